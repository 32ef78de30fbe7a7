"""The self-generation runner: (seed description + instruction) -> the backbone's own answer, at scale.

Each item is one (utterance, prompt index) pair with id ``<utt>-p<k>``. The runner is

- **sharded**: item ids are split by a stable hash, so ``--shard i --nshards n`` jobs on many nodes
  cover every item exactly once with no coordination;
- **resumable**: output is append-only JSONL, flushed and fsynced after every batch; a rerun reads
  the ids already written and skips them, and a partial last line left by a kill is cut off first.
  A kill loses at most the batch in flight, and no id is ever written twice;
- **honest about truncation**: answers cut by ``max_new_tokens`` keep ``finish_reason: length`` and
  the training data loader leaves them out of supervision.

Rows are DeSTA-AQA5M compatible: ``id, dataset, seed_description, prompt, response, messages``, plus the
clip's ``utt_id`` (its data-dir id, the one identity every stage uses), also on the audio entry of the
user turn with the clip's ``duration`` (from ``utt2dur``, when the check stage wrote it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.jsonl import AppendOnlyJsonl, read_done_ids, shard_of  # noqa: F401  (shard_of re-exported)
from toolkit.models.chat import AUDIO_TOKEN

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "{seed_description}\n\n{prompt}"


@dataclass
class SelfGenItem:
    """One question for the backbone, and what the training row needs besides the answer."""

    id: str
    utt_id: str
    dataset: str
    audio: dict[str, Any]
    seed_description: str
    prompt: str
    metadata: dict[str, Any] = field(default_factory=dict)  # the clip's labels (the label-template targets)
    text: str = ""  # the clip's transcript, if any


def category_of(metadata: dict[str, Any], text: str | None) -> str:
    """Which instruction pool fits a clip: the corpus's ``category`` or speech when it has words."""
    category = metadata.get("category")
    if category:
        return str(category)
    return "speech" if text and text.strip() else "sound"


def build_items(data_dirs: Sequence[str | os.PathLike], pool: Any, prompts_per_clip: int) -> Iterator[SelfGenItem]:
    """Items for every good utterance of the data dirs (ids in ``bad_utts`` are skipped and logged)."""
    from toolkit.data.datadir import DataDir, read_jsonl

    for path in data_dirs:
        data = DataDir(path)
        seeds_file = data.file("seed_descriptions.jsonl")
        if not seeds_file.is_file():
            raise FileNotFoundError(f"{seeds_file} is missing: run the seed description stage (./run.sh --stage 3) first")
        seeds = {row["id"]: row for row in read_jsonl(seeds_file)}
        for utt in data.utterances():
            if utt.id not in seeds:
                raise KeyError(f"{seeds_file}: no seed description for utterance '{utt.id}'; rerun stage 3 with --force")
            audio: dict[str, Any] = {"audio": utt.audio, "text": utt.text or "", "utt_id": utt.id}
            if utt.start is not None:
                audio.update(start=utt.start, end=utt.end)
            if utt.duration is not None:
                audio["duration"] = utt.duration
            category = category_of(utt.metadata, utt.text)
            for k in range(prompts_per_clip):
                item_id = f"{utt.id}-p{k}"
                yield SelfGenItem(id=item_id, utt_id=utt.id, dataset=str(utt.dataset or seeds[utt.id].get("dataset", "")),
                                  audio=audio, seed_description=seeds[utt.id]["seed_description"],
                                  prompt=pool.sample(item_id, category), metadata=dict(utt.metadata), text=utt.text or "")


def audio_turn(prompt: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The training row's user turn: the audio tag stands where the template put the seed description.

    The default template (description first) gives ``<|AUDIO|>\n{prompt}``, as every decode prompt without a tag;
    another template (``{prompt}\n\n{seed_description}``) puts the tag in the description's place, so the
    trained model hears the audio where the backbone read the description.
    """
    if template.startswith("{seed_description}"):
        return f"{AUDIO_TOKEN}\n{prompt}"
    return template.format(seed_description=AUDIO_TOKEN, prompt=prompt)


def training_row(item: SelfGenItem, response: str, finish_reason: str, num_tokens: int,
                 template: str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The DeSTA-AQA5M-style row: (audio + prompt) -> the backbone's answer to (description + prompt)."""
    return {
        "id": item.id, "utt_id": item.utt_id, "dataset": item.dataset, "seed_description": item.seed_description, "prompt": item.prompt,
        "response": response, "finish_reason": finish_reason, "num_tokens": num_tokens,
        "messages": [
            {"role": "user", "content": audio_turn(item.prompt, template), "audios": [item.audio]},
            {"role": "assistant", "content": response},
        ],
    }


def run_selfgen(
    items: Sequence[SelfGenItem],
    backend: Any,
    output: str | os.PathLike,
    batch_size: int = 16,
    shard: int = 0,
    nshards: int = 1,
    template: str = DEFAULT_TEMPLATE,
    system_prompt: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Answer every item of this shard not yet in ``output``; returns counts and throughput."""
    from tqdm import tqdm

    if not 0 <= shard < nshards:
        raise ValueError(f"--shard must be in [0, {nshards}), got {shard}")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done_ids(out)
    mine = [it for it in items if shard_of(it.id, nshards) == shard]
    todo = [it for it in mine if it.id not in done]
    seen: set[str] = set()
    dupes = [it.id for it in todo if it.id in seen or seen.add(it.id)]
    if dupes:
        raise ValueError(f"duplicate item ids {dupes[:5]}: the data dir repeats an utterance id; fix its wav.scp")
    # Similar lengths together: less padding per batch (order of rows in the file does not matter).
    todo.sort(key=lambda it: len(it.seed_description) + len(it.prompt))
    stats = {"shard": shard, "nshards": nshards, "items": len(mine), "already_done": len(mine) - len(todo),
             "written": 0, "tokens": 0, "truncated": 0}
    start = time.time()
    bar = tqdm(total=len(todo), desc=f"selfgen shard {shard}/{nshards}", unit="row", disable=not progress)
    with AppendOnlyJsonl(out) as writer:
        for i in range(0, len(todo), batch_size):
            batch = todo[i : i + batch_size]
            conversations = []
            for it in batch:
                conv = [{"role": "user", "content": template.format(seed_description=it.seed_description, prompt=it.prompt)}]
                conversations.append(([{"role": "system", "content": system_prompt}] if system_prompt else []) + conv)
            # GenerationBackend.answer (label_template reads the items); a bare generate() backend works too.
            answer = getattr(backend, "answer", None)
            answers = answer(batch, conversations) if answer else backend.generate(conversations)
            writer.write_batch(training_row(it, a.text, a.finish_reason, a.num_tokens, template) for it, a in zip(batch, answers, strict=True))
            stats["written"] += len(batch)
            stats["tokens"] += sum(a.num_tokens for a in answers)
            stats["truncated"] += sum(a.finish_reason == "length" for a in answers)
            elapsed = max(time.time() - start, 1e-6)
            bar.update(len(batch))
            bar.set_postfix(rows_s=f"{stats['written'] / elapsed:.2f}", tok_s=f"{stats['tokens'] / elapsed:.1f}", truncated=stats["truncated"])
    bar.close()
    elapsed = max(time.time() - start, 1e-6)
    stats.update(seconds=round(elapsed, 2), rows_per_s=round(stats["written"] / elapsed, 3), tokens_per_s=round(stats["tokens"] / elapsed, 2))
    return stats


ATTRIBUTE_KEYS = ("gender", "instrument", "sound", "language", "accent", "speed", "pitch")


def attribute_mentions(rows: Sequence[dict[str, Any]], metadata: dict[str, dict[str, Any]],
                       keys: Sequence[str] = ATTRIBUTE_KEYS) -> dict[str, dict[str, Any]]:
    """For each attribute, how many answers name the clip's value of it (whole words, any case).

    A target that never says "female" cannot teach the adapter to hear it: stage 4 logs these shares so a
    pool or prompt count that leaves the attributes out is visible before training.
    """
    import re

    counts: dict[str, dict[str, Any]] = {}
    for row in rows:
        meta = metadata.get(str(row.get("utt_id")), {})
        answer = " " + " ".join(re.sub(r"[^\w]+", " ", str(row.get("response", "")).lower()).split()) + " "
        for key in keys:
            value = meta.get(key)
            if not isinstance(value, str) or not value.strip():
                continue
            entry = counts.setdefault(key, {"rows": 0, "named": 0})
            entry["rows"] += 1
            words = " " + " ".join(re.sub(r"[^\w]+", " ", value.lower()).split()) + " "
            entry["named"] += words in answer
    for entry in counts.values():
        entry["share"] = round(100.0 * entry["named"] / entry["rows"], 1) if entry["rows"] else None
    return counts
