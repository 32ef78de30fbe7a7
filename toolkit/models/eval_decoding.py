"""Batched decoding of eval manifests through a chat engine (``hf``: the model's one ``generate()``; ``vllm``).

An eval manifest row (``data/<set>/eval.jsonl`` read through ``DataDir.eval_rows``, which adds the
clip's ``audio`` and ``duration`` from the data dir by its ``utt_id``, or a benchmark converted by
``toolkit.score.benchmarks``) holds ``id, utt_id, dataset, audio, text, prompt, reference, metric,
choices``. Each becomes one conversation ``<|AUDIO|>\\n<prompt>``; the transcript is the row's
``text`` when given, else the model's transcriber writes it (Whisper, batched). Output rows keep
every manifest field and add ``prediction``, ``transcript`` and ``finish_reason``; the file is
append-only and resumable like self-generation. A clip that cannot be read becomes a row with an
``error`` field and an empty prediction (counted, never fatal).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.audio import AudioError, audio_duration, load_audio
from toolkit.jsonl import AppendOnlyJsonl, read_done_ids
from toolkit.models.chat import AUDIO_TOKEN

log = logging.getLogger(__name__)


def conversation_for(row: dict[str, Any], wave: np.ndarray) -> list[dict[str, Any]]:
    """The chat turn for one eval row (a prompt that already places ``<|AUDIO|>`` is kept)."""
    prompt = str(row["prompt"])
    content = prompt if AUDIO_TOKEN in prompt else f"{AUDIO_TOKEN}\n{prompt}"
    return [{"role": "user", "content": content, "audios": [{"audio": wave, "text": row.get("text")}]}]


def row_conversation(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A row that carries its own ``messages`` (several turns, one audio per ``<|AUDIO|>``), audio loaded; else None.

    Multi-turn eval rows (e.g. two clips in two user turns) are answered as written: the model replies
    to the last user turn; a trailing assistant turn (a reference) is dropped.
    """
    messages = row.get("messages")
    if not messages:
        return None
    turns = [dict(m) for m in messages]
    if turns and turns[-1].get("role") == "assistant":
        turns.pop()
    for m in turns:
        m["audios"] = [{"audio": load_audio(a["audio"], start=a.get("start"), end=a.get("end")), "text": a.get("text")}
                       for a in (m.get("audios") or [])]
    return turns


def audio_conversation(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's question about its own clip, or its own ``messages`` (the default of :func:`decode_rows`)."""
    conv = row_conversation(row)
    if conv is None:
        conv = conversation_for(row, load_audio(row["audio"], start=row.get("start"), end=row.get("end")))
    return conv


def _duration(row: dict[str, Any]) -> float:
    """Seconds of audio in a row, for batching: ``duration`` (a data dir's ``utt2dur``, filled in by
    ``DataDir.eval_rows``), a segment's length, or, for benchmark rows, the file header."""
    if row.get("messages"):
        return sum(_duration(a) for m in row["messages"] for a in (m.get("audios") or []))
    if row.get("duration") is not None:
        return float(row["duration"])
    if row.get("start") is not None and row.get("end") is not None:
        return float(row["end"]) - float(row["start"])
    try:
        return audio_duration(row["audio"])
    except AudioError:
        return 0.0  # unreadable: decoded (and reported) with the shortest clips


def decode_rows(
    engine: Any,
    rows: Sequence[dict[str, Any]],
    output: str | os.PathLike,
    batch_size: int = 8,
    progress: bool = True,
    conversation: Callable[[dict[str, Any]], list[dict[str, Any]]] = audio_conversation,
) -> dict[str, Any]:
    """Decode ``rows`` not yet in ``output`` with ``engine`` (a :class:`~toolkit.models.chat_engines.ChatEngine`
    over an exported model, decoding with its own settings); returns counts and samples/s.

    ``conversation`` turns a row into the chat to answer (the controls of stage 7 swap in silence or the
    clip's seed description); an :class:`AudioError` it raises marks that row unreadable.
    """
    from tqdm import tqdm

    done = read_done_ids(output)
    todo = [r for r in rows if r["id"] not in done]
    # Similar durations share a batch: the encoder pads to the longest clip of its batch.
    todo.sort(key=lambda r: _duration(r))
    stats = {"rows": len(rows), "already_done": len(rows) - len(todo), "decoded": 0, "audio_errors": 0}
    start = time.time()
    bar = tqdm(total=len(todo), desc=f"decode {Path(output).parent.name}", unit="utt", disable=not progress)
    with AppendOnlyJsonl(output) as writer:
        for i in range(0, len(todo), batch_size):
            batch, convs, failed = todo[i : i + batch_size], [], []
            for row in batch:
                try:
                    convs.append(conversation(row))
                except AudioError as err:
                    log.error("%s", err)
                    convs.append(None)
                    failed.append(row["id"])
            good = [(r, c) for r, c in zip(batch, convs) if c is not None]
            answers = dict(zip((r["id"] for r, _ in good), engine.generate([c for _, c in good]) if good else []))
            out_rows = []
            for row in batch:
                d = answers.get(row["id"])
                if d is None:
                    out_rows.append({**row, "prediction": "", "transcript": "", "finish_reason": "error", "error": "audio unreadable"})
                else:
                    extra = {"transcripts": d.transcripts} if len(d.transcripts) > 1 else {}
                    first = d.transcripts[0] if d.transcripts else ""
                    out_rows.append({**row, "prediction": d.text, "transcript": first,
                                     "finish_reason": d.finish_reason, **extra})
            writer.write_batch(out_rows)
            stats["decoded"] += len(batch)
            stats["audio_errors"] += len(failed)
            bar.update(len(batch))
            bar.set_postfix(utt_s=f"{stats['decoded'] / max(time.time() - start, 1e-6):.2f}")
    bar.close()
    elapsed = max(time.time() - start, 1e-6)
    stats.update(seconds=round(elapsed, 2), samples_per_s=round(stats["decoded"] / elapsed, 3))
    return stats
