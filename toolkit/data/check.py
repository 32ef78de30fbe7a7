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
    write_data_dir,
    write_table,
)

log = logging.getLogger(__name__)

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

    from toolkit.audio import SAMPLE_RATE, AudioError, decode_audio

    try:  # the reader every stage uses; resampling only when a formatted copy is written
        clip = decode_audio(utt.audio, SAMPLE_RATE if format_path is not None else None, utt.start, utt.end,
                            allow_pickle=allow_pickle)
    except AudioError as err:
        return utt.id, None, err.reason + (f"; fix: {err.fix}" if err.fix else ""), ""
    except Exception as err:  # anything else a codec throws is still a bad file, not a crash
        return utt.id, None, f"{type(err).__name__}: {err}", ""
    notes = []
    if clip.source_rate != SAMPLE_RATE:
        notes.append(f"sample rate {clip.source_rate} Hz, resampled to {SAMPLE_RATE}")
    if clip.channels != 1:
        notes.append(f"{clip.channels} channels, downmixed to mono")
    if clip.past_end > 0.01:
        notes.append(f"segment end {utt.end}s past the recording end {clip.recording_seconds:.2f}s, cut there")
    if clip.duration <= 0:
        return utt.id, None, "zero duration", ""
    if format_path is not None:
        import soundfile as sf

        out = clip.samples
        peak = float(np.max(np.abs(out))) if out.size else 0.0
        if peak > 1.0:  # resampling can overshoot a full-scale signal; keep PCM from wrapping
            out = out / peak
            notes.append("peak above full scale after resampling, normalised")
        Path(format_path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(format_path, out, SAMPLE_RATE, subtype="PCM_16")
    return utt.id, clip.duration, "", "; ".join(notes)


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
    # eval.jsonl rows name their utterance, and decoding reads its audio from this dir's wav.scp
    # (DataDir.eval_rows), so the manifest travels unchanged; rows of bad utterances are skipped there.
    for name in ("eval.jsonl", "check_notes"):
        if data.file(name).exists():
            shutil.copyfile(data.file(name), root / name)
