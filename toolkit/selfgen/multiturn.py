"""Multi-turn rows: two audios in two user turns, the backbone answering the last turn from both descriptions.

A two-turn item pairs two single-turn self-generated rows (their audio, seed description, prompt
and answer): the conversation is

    user:      <|AUDIO|> (clip A) + prompt A
    assistant: the backbone's own answer to (description A + prompt A)    (from the single-turn row)
    user:      <|AUDIO|> (clip B) + a follow-up prompt about both clips
    assistant: the backbone's answer to the *text* conversation where each audio is replaced by
               its seed description (description A + prompt A, answer A, description B + follow-up)

Only the last answer is supervised (the training loader treats earlier turns as context). Rows
are DeSTA-AQA5M compatible (``id, dataset, seed_description, prompt, response, messages``) and
written append-only and resumable, like single-turn self-generation.

Wiring into a corpus: self-generate the single-turn rows first (stage 4), then
``run_multiturn(build_two_turn_items(rows, n), backend, out)``; ``toolkit.bin.selfgen`` users call it
with the same backend. The pairing and the follow-up prompts are deterministic in the row ids.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.jsonl import AppendOnlyJsonl, read_done_ids, stable_hash
from toolkit.models.chat import AUDIO_TOKEN

FOLLOW_UPS = (
    "How does this clip differ from the first one?",
    "Compare this audio with the previous one.",
    "What do the two clips have in common, and what sets them apart?",
    "Is this recording similar to the first one? Explain briefly.",
)


@dataclass
class TwoTurnItem:
    """Two single-turn rows joined into one conversation, plus the follow-up question for the second clip."""

    id: str
    dataset: str
    first: Mapping[str, Any]  # a single-turn self-generated row (its messages, seed_description, prompt, response)
    second: Mapping[str, Any]
    follow_up: str


def _first_audio(row: Mapping[str, Any]) -> dict[str, Any]:
    audios = [a for m in row["messages"] if m.get("role") == "user" for a in m.get("audios") or []]
    if len(audios) != 1:
        raise ValueError(f"row '{row.get('id')}': a two-turn item pairs single-audio rows, this one has "
            f"{len(audios)} audios")
    return dict(audios[0])


def _clip(row: Mapping[str, Any]) -> str:
    """The clip a single-turn row is about: its utt id (rows of older runs: its audio source)."""
    audio = _first_audio(row)
    return str(audio.get("utt_id") or row.get("utt_id") or audio["audio"])


def build_two_turn_items(rows: Sequence[Mapping[str, Any]], count: int | None = None,
                         follow_ups: Sequence[str] = FOLLOW_UPS) -> list[TwoTurnItem]:
    """Pair each usable single-turn row with the next one of another clip (in id order; deterministic).

    Truncated answers (``finish_reason: length``) are never used: the first answer is shown to the
    backbone as its own earlier turn.
    """
    usable = sorted((r for r in rows if r.get("finish_reason") != "length" and r.get("response")),
                    key=lambda r: str(r["id"]))
    items = []
    for i, first in enumerate(usable):
        second = next((r for r in usable[i + 1:] + usable[:i] if _clip(r) != _clip(first)), None)
        if second is None:
            break
        item_id = f"{first['id']}+{second['id']}"
        k = stable_hash(item_id) % len(follow_ups)
        dataset = str(first.get("dataset", "")) if first.get("dataset") == second.get("dataset") else "multiturn"
        items.append(TwoTurnItem(id=item_id, dataset=dataset, first=first, second=second, follow_up=follow_ups[k]))
        if count is not None and len(items) >= count:
            break
    return items


def text_conversation(item: TwoTurnItem, template: str = "{seed_description}\n\n{prompt}",
                      system_prompt: str | None = None) -> list[dict[str, str]]:
    """What the backbone reads: each audio replaced by its seed description, its own first answer kept."""
    first = template.format(seed_description=item.first["seed_description"], prompt=item.first["prompt"])
    second = template.format(seed_description=item.second["seed_description"], prompt=item.follow_up)
    conv = [{"role": "user", "content": first}, {"role": "assistant", "content": str(item.first["response"])},
            {"role": "user", "content": second}]
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + conv


def audio_conversation(item: TwoTurnItem) -> list[dict[str, Any]]:
    """The same conversation as the trained model sees it: one audio in each user turn, no final answer."""
    return [{"role": "user", "content": f"{AUDIO_TOKEN}\n{item.first['prompt']}", "audios": [_first_audio(item.first)]},
            {"role": "assistant", "content": str(item.first["response"])},
            {"role": "user", "content": f"{AUDIO_TOKEN}\n{item.follow_up}", "audios": [_first_audio(item.second)]}]


def two_turn_row(item: TwoTurnItem, response: str, finish_reason: str, num_tokens: int) -> dict[str, Any]:
    """The AQA row: both turns with their audios; ``response`` (the last turn) is what training supervises."""
    return {"id": item.id, "dataset": item.dataset,
            "seed_description": [item.first["seed_description"], item.second["seed_description"]],
            "prompt": item.follow_up, "response": response, "finish_reason": finish_reason, "num_tokens": num_tokens,
            "messages": audio_conversation(item) + [{"role": "assistant", "content": response}]}


def run_two_turn(items: Sequence[TwoTurnItem], backend: Any, output: str | os.PathLike, batch_size: int = 16,
                 system_prompt: str | None = None) -> dict[str, int]:
    """Answer every item not yet in ``output`` with the self-generation ``backend``; append-only, resumable by id."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done_ids(out)
    todo = [it for it in items if it.id not in done]
    stats = {"items": len(items), "already_done": len(items) - len(todo), "written": 0, "truncated": 0}
    with AppendOnlyJsonl(out) as writer:
        for i in range(0, len(todo), batch_size):
            batch = todo[i : i + batch_size]
            answers = backend.generate([text_conversation(it, system_prompt=system_prompt) for it in batch])
            writer.write_batch(two_turn_row(it, a.text, a.finish_reason, a.num_tokens)
                               for it, a in zip(batch, answers, strict=True))
            stats["written"] += len(batch)
            stats["truncated"] += sum(a.finish_reason == "length" for a in answers)
    return stats
