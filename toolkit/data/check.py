"""Stage 2: decode every utterance of a data dir once, record durations, list the bad ones.

Why decode everything up front: a corrupt file found at training step 40,000 kills a multi-GPU run;
found here it becomes one line in ``bad_utts`` that every later reader skips (and logs).

Per utterance the check reads the audio through :mod:`toolkit.audio` and decides:

- bad (listed in ``bad_utts`` as ``<id>\\t<reason>``): missing, empty, undecodable, zero samples,
  NaN/Inf samples, a segment outside its recording;
- fine, with a note (``check_notes``): not 16 kHz (the reader resamples), not mono (the reader downmixes).

Outputs in the data dir: ``utt2dur`` (good utterances), ``bad_utts``, ``check_notes``. With
``format_dir`` the good utterances are also written as 16 kHz mono 16-bit wavs under
``<format_dir>/audio/`` and ``<format_dir>`` becomes a data dir of its own (no ``segments``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from toolkit.data.datadir import (
    EMPTY_SPEECH_TEXT,
    DataDir,
    Utterance,
    is_speech_without_text,
    read_jsonl,
    write_data_dir,
    write_jsonl,
    write_table,
)

log = logging.getLogger(__name__)

TARGET_RATE = 16000
MAX_WORKERS = 2  # decoding is I/O + codec bound; more processes only fight over 2 cores here


@dataclass
class CheckResult:
    """What the check found: per-utterance durations, reasons for bad ones, notes for fixable ones."""

    durations: dict[str, float] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def summary(self, data_dir: str | os.PathLike) -> str:
        return f"{len(self.durations)} ok, {len(self.bad)} bad (see {Path(data_dir) / 'bad_utts'})"


def check_one(utt: Utterance, format_path: str | None = None,
              allow_pickle: bool = False) -> tuple[str, float | None, str, str]:
    """Check one utterance: returns (id, duration or None, bad reason or '', note or '').

    A top-level function so worker processes can pickle it; ``allow_pickle`` travels with each job since
    workers are spawned (they do not inherit the parent's reader settings).
    """
    import numpy as np

    from toolkit.audio import AudioError, read_audio_raw, resample

    try:
        data, rate = read_audio_raw(utt.audio, allow_pickle=allow_pickle)
    except AudioError as err:
        return utt.id, None, err.reason + (f"; fix: {err.fix}" if err.fix else ""), ""
    except Exception as err:  # anything else a codec throws is still a bad file, not a crash
        return utt.id, None, f"{type(err).__name__}: {err}", ""
    notes = []
    if rate != TARGET_RATE:
        notes.append(f"sample rate {rate} Hz, resampled to {TARGET_RATE}")
    if data.shape[1] != 1:
        notes.append(f"{data.shape[1]} channels, downmixed to mono")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if utt.start is not None or utt.end is not None:
        total = len(mono) / rate
        start, end = utt.start or 0.0, total if utt.end is None else utt.end
        if start >= total or end <= start:
            return utt.id, None, f"segment {start}-{end}s outside the recording ({total:.2f}s)", ""
        if end > total + 0.01:
            notes.append(f"segment end {end}s past the recording end {total:.2f}s, cut there")
        mono = mono[int(round(start * rate)):int(round(min(end, total) * rate))]
    duration = len(mono) / rate
    if duration <= 0:
        return utt.id, None, "zero duration", ""
    if format_path is not None:
        import soundfile as sf

        out = resample(np.ascontiguousarray(mono, dtype=np.float32), rate, TARGET_RATE)
        peak = float(np.max(np.abs(out))) if out.size else 0.0
        if peak > 1.0:  # resampling can overshoot a full-scale signal; keep PCM from wrapping
            out = out / peak
            notes.append("peak above full scale after resampling, normalised")
        Path(format_path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(format_path, out, TARGET_RATE, subtype="PCM_16")
    return utt.id, duration, "", "; ".join(notes)


def _check_star(args: tuple[Utterance, str | None, bool]) -> tuple[str, float | None, str, str]:
    return check_one(*args)


def check_data_dir(
    data_dir: str | os.PathLike,
    nj: int = 2,
    format_dir: str | os.PathLike | None = None,
    progress: bool = True,
    allow_pickle: bool = False,
) -> CheckResult:
    """Check every utterance of ``data_dir`` and write ``utt2dur``, ``bad_utts`` and ``check_notes``.

    Args:
        data_dir: the Kaldi data dir to check.
        nj: worker processes (capped at 2; 1 checks in this process).
        format_dir: when given, also write 16 kHz mono wavs and a new data dir there.
        progress: show a tqdm bar.
        allow_pickle: read kaldiio ark entries that are Python pickles (``data.allow_pickle``).
    """
    from tqdm import tqdm

    data = DataDir(data_dir)
    utts = list(data.utterances(skip_bad=False))  # a re-check decides afresh
    format_root = Path(format_dir).resolve() if format_dir is not None else None
    has_text = any(u.text is not None for u in utts)
    no_text = {u.id for u in utts if is_speech_without_text(u, has_text)}
    jobs = [(u, str(format_root / "audio" / f"{u.id}.wav") if format_root else None, allow_pickle)
            for u in utts if u.id not in no_text]
    nj = max(1, min(nj, MAX_WORKERS, len(jobs)))
    results = []
    bar = tqdm(total=len(jobs), desc=f"check {data.path}", unit="utt", disable=not progress)
    if nj == 1:
        for job in jobs:
            results.append(_check_star(job))
            bar.update()
    else:
        with multiprocessing.get_context("spawn").Pool(nj) as pool:
            for item in pool.imap(_check_star, jobs, chunksize=8):
                results.append(item)
                bar.update()
    bar.close()

    result = CheckResult()
    results += [(utt_id, None, EMPTY_SPEECH_TEXT, "") for utt_id in sorted(no_text)]
    for utt_id, duration, reason, note in results:
        if reason:
            result.bad[utt_id] = reason.replace("\t", " ").replace("\n", " ")
        else:
            result.durations[utt_id] = duration
        if note:
            result.notes[utt_id] = note
    write_table(data.file("utt2dur"), {k: f"{v:.3f}" for k, v in result.durations.items()})
    write_table(data.file("bad_utts"), result.bad, sep="\t")
    write_table(data.file("check_notes"), result.notes, sep="\t")
    if result.notes:
        log.info("%s: %d utterances needed conversion (see %s)", data.path, len(result.notes), data.file("check_notes"))
    if format_root is not None:
        _write_formatted(data, utts, result, format_root)
    return result


def _write_formatted(data: DataDir, utts: list[Utterance], result: CheckResult, root: Path) -> None:
    """Write the formatted copy: one 16 kHz wav per good utterance, ``bad_utts`` carried over."""
    good = [replace(u, audio=str(root / "audio" / f"{u.id}.wav"), start=None, end=None, recording=None,
                    duration=result.durations[u.id]) for u in utts if u.id in result.durations]
    write_data_dir(root, good)
    write_table(root / "bad_utts", result.bad, sep="\t")
    if data.file("eval.jsonl").exists():  # decoding reads the formatted audio too
        rows = read_jsonl(data.file("eval.jsonl"))
        new_audio = {u.id: u.audio for u in good}
        utt_of = lambda r: r.get("utt_id", r["id"])  # noqa: E731
        dropped = sum(utt_of(r) not in new_audio for r in rows)
        if dropped:
            log.warning("%s: %d eval rows left out of %s (their ids are in bad_utts)", data.file("eval.jsonl"),
                        dropped, root / "eval.jsonl")
        write_jsonl(root / "eval.jsonl",
                    ({**{k: v for k, v in r.items() if k not in ("start", "end")}, "audio": new_audio[utt_of(r)]}
                     for r in rows if utt_of(r) in new_audio))
    for name in ("check_notes",):
        if data.file(name).exists():
            shutil.copyfile(data.file(name), root / name)
