"""Kaldi-style data directories: read them, write them, and refuse broken ones with file:line errors.

A data dir ``data/<set>/`` holds (Kaldi conventions, ids sorted in C-locale byte order):

- ``wav.scp``         ``<recording-id> <source>``; the source is a file path, a kaldiio ark entry
  (``ark:/x.ark:123`` or ``/x.ark:123``) or a command ending in ``|``. Sources may contain spaces.
- ``segments``        optional, ``<utt-id> <recording-id> <start> <end>`` in seconds (``end`` -1: to the
  end of the recording). Without it, utterance id == recording id.
- ``text``            ``<utt-id> <transcript>``; an empty transcript (``<utt-id>`` alone) marks a clip with
  no speech (sound, music). When the file exists it must cover every utterance.
- ``utt2spk``         ``<utt-id> <speaker-id>`` (``spk2utt`` is written beside it for Kaldi tools).
- ``utt2dur``         ``<utt-id> <seconds>``, written by the check stage.
- ``metadata.jsonl``  one JSON object per utterance: ``{"id", "dataset", ...attributes}``.
- ``bad_utts``        ``<utt-id>\\t<reason>`` written by the check stage. Readers skip these ids and log
  how many, so nothing is dropped silently.
- ``eval.jsonl``      eval splits: one question per row, naming its clip by ``utt_id`` only; the audio is
  read from ``wav.scp`` when the manifest is read (:meth:`DataDir.eval_rows`).

The utterance id is a clip's one identity in every later stage: self-generated rows, the feature cache,
decode outputs and score details all carry it, and :class:`UttIndex` finds the clip again by it.

Audio is always read through :func:`toolkit.audio.load_audio` (the one reader).
"""

from __future__ import annotations

# re-exported: the one JSONL reader/writer
from toolkit.jsonl import numbered_rows, read_jsonl, read_lines, write_jsonl  # noqa: F401

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

# Files a writer owns; anything else in the directory (check results, eval.jsonl, markers) is left alone.
KALDI_FILES = ("wav.scp", "segments", "text", "utt2spk", "spk2utt", "utt2dur", "metadata.jsonl")


class DataDirError(ValueError):
    """A data dir that breaks the Kaldi conventions; the message names the file, the line and the fix."""


def kaldi_sort_key(utt_id: str) -> bytes:
    """Kaldi sorts with ``LC_ALL=C``: plain byte order of the UTF-8 id."""
    return utt_id.encode("utf-8")


@dataclass
class Utterance:
    """One utterance of a data dir.

    ``audio`` is the wav.scp entry of its recording; ``start``/``end`` (seconds) cut a segment out of it.
    ``text`` is ``""`` for clips without speech and ``None`` when the data dir has no ``text`` file.
    ``metadata`` holds the metadata.jsonl attributes (``dataset`` included, ``id`` excluded).
    """

    id: str
    audio: str
    text: str | None = None
    speaker: str | None = None
    start: float | None = None
    end: float | None = None
    duration: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    recording: str | None = None  # recording id when the utterance comes from ``segments``

    @property
    def dataset(self) -> str | None:
        return self.metadata.get("dataset")

    def load(self, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """The utterance's samples, mono float32 at ``sample_rate``."""
        from toolkit.audio import load_audio

        return load_audio(self.audio, sample_rate=sample_rate, start=self.start, end=self.end)


# ----------------------------------------------------------------------------------------------- reading


def read_table(path: Path, min_fields: int = 2, allow_empty_value: bool = False) -> dict[str, str]:
    """Read a ``<id> <value...>`` Kaldi table into an ordered dict, refusing duplicates and bad lines."""
    table: dict[str, str] = {}
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if not value and not allow_empty_value and min_fields > 1:
            raise DataDirError(f"{path}:{lineno}: '{key}' has no value; each line must be '<id> <value>'")
        if key in table:
            raise DataDirError(f"{path}:{lineno}: duplicate id '{key}'; every id must appear once")
        table[key] = value
    return table


def read_segments(path: Path) -> dict[str, tuple[str, float, float | None]]:
    """Read ``segments``: utt -> (recording, start, end or None for 'to the end')."""
    segments: dict[str, tuple[str, float, float | None]] = {}
    for utt, value in read_table(path).items():
        fields = value.split()
        lineno = _line_of(path, utt)
        if len(fields) != 3:
            raise DataDirError(f"{path}:{lineno}: expected '<utt> <recording> <start> <end>', got '{utt} {value}'")
        try:
            start, end = float(fields[1]), float(fields[2])
        except ValueError:
            raise DataDirError(f"{path}:{lineno}: start/end must be numbers, got '{fields[1]}' '{fields[2]}'") from None
        if end != -1 and end <= start:
            raise DataDirError(f"{path}:{lineno}: segment end {end} is not after start {start}")
        segments[utt] = (fields[0], start, None if end == -1 else end)
    return segments


def read_bad_utts(path: Path) -> dict[str, str]:
    """Read ``bad_utts``: id -> reason (empty dict if the file is absent)."""
    if not path.exists():
        return {}
    bad = {}
    for _, line in read_lines(path):
        if line.strip():
            utt, _, reason = line.partition("\t")
            bad[utt.strip()] = reason.strip()
    return bad


def _line_of(path: Path, key: str) -> int:
    """Line number of ``key`` in a table (only used to build error messages)."""
    for lineno, line in read_lines(path):
        if line.split(maxsplit=1)[:1] == [key]:
            return lineno
    return 0


class DataDir:
    """A Kaldi-style data directory.

    >>> d = DataDir("data/train")
    >>> for utt in d.utterances():   # skips ids listed in bad_utts (and logs how many)
    ...     samples = utt.load()

    Reading validates the directory (see :meth:`validate`) the first time utterances are asked for.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._cache: list[Utterance] | None = None

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.file("wav.scp").is_file()

    def bad_utts(self) -> dict[str, str]:
        """Ids the check stage found unreadable, with the reason."""
        return read_bad_utts(self.file("bad_utts"))

    def _load(self) -> list[Utterance]:
        if self._cache is not None:
            return self._cache
        if not self.exists():
            raise DataDirError(f"{self.file('wav.scp')}: missing; run the data preparation stage (stage 1) first")
        wavs = read_table(self.file("wav.scp"))
        if self.file("segments").exists():
            segments = read_segments(self.file("segments"))
            for utt, (rec, _, _) in segments.items():
                if rec not in wavs:
                    raise DataDirError(f"{self.file('segments')}:{_line_of(self.file('segments'), utt)}: recording "
                                       f"'{rec}' is not in wav.scp")
        else:
            segments = {utt: (utt, None, None) for utt in wavs}
        text = read_table(self.file("text"), allow_empty_value=True) if self.file("text").exists() else None
        utt2spk = read_table(self.file("utt2spk")) if self.file("utt2spk").exists() else {}
        utt2dur = read_table(self.file("utt2dur")) if self.file("utt2dur").exists() else {}
        metadata: dict[str, dict[str, Any]] = {}
        if self.file("metadata.jsonl").exists():
            for lineno, row in enumerate(read_jsonl(self.file("metadata.jsonl")), 1):
                if "id" not in row:
                    raise DataDirError(f"{self.file('metadata.jsonl')}:{lineno}: row has no 'id'")
                if row["id"] in metadata:
                    raise DataDirError(f"{self.file('metadata.jsonl')}:{lineno}: duplicate id '{row['id']}'")
                metadata[row["id"]] = {k: v for k, v in row.items() if k != "id"}
        utts = []
        for utt, (rec, start, end) in segments.items():
            if text is not None and utt not in text:
                raise DataDirError(f"{self.file('text')}: no line for utterance '{utt}' (it is in "
                                   f"{'segments' if rec != utt or start is not None else 'wav.scp'}); every "
                                   "utterance needs a text line ('<id>' alone for clips without speech)")
            duration = float(utt2dur[utt]) if utt in utt2dur else None
            utts.append(Utterance(
                id=utt, audio=wavs[rec], text=None if text is None else text[utt], speaker=utt2spk.get(utt),
                start=start, end=end, duration=duration, metadata=metadata.get(utt, {}),
                recording=rec if self.file("segments").exists() else None,
            ))
        utts.sort(key=lambda u: kaldi_sort_key(u.id))
        self._cache = utts
        return utts

    def validate(self) -> None:
        """Raise :class:`DataDirError` for duplicate ids, malformed lines, or ids missing from ``text``."""
        self._cache = None
        self._load()

    def utterances(self, skip_bad: bool = True) -> Iterator[Utterance]:
        """Yield the utterances in Kaldi order; with ``skip_bad`` the ids in ``bad_utts`` are left out (logged)."""
        utts = self._load()
        bad = self.bad_utts() if skip_bad else {}
        if bad:
            log.warning("%s: skipping %d of %d utterances listed in %s", self.path, len(bad), len(utts),
                        self.file("bad_utts"))
        for utt in utts:
            if utt.id not in bad:
                yield utt

    def ids(self, skip_bad: bool = True) -> list[str]:
        return [u.id for u in self.utterances(skip_bad=skip_bad)]

    def __len__(self) -> int:
        return len(self._load())

    def by_id(self) -> dict[str, Utterance]:
        """Every utterance (bad ones included) by id."""
        return {u.id: u for u in self._load()}

    def eval_rows(self, name: str = "eval.jsonl") -> list[dict[str, Any]]:
        """The eval manifest of this set for decoding, each row with its clip's audio; ``bad_utts`` left out (logged).

        In a data dir (it has ``wav.scp``) a row names its clip by ``utt_id`` and nothing else: its ``audio``, the
        ``start``/``end`` of a segment and its ``duration`` (``utt2dur``) are filled in here from the data dir, so
        moving or reformatting the audio (stage 2's ``format_dir``) never needs a manifest rewrite.  A benchmark set
        (``toolkit.bin.prepare_benchmark``: a manifest without ``wav.scp``) carries ``audio`` in its rows instead.
        """
        path = self.file(name)
        rows = list(numbered_rows(path))
        bad = self.bad_utts()
        kept = [(n, r) for n, r in rows if r.get("utt_id", r.get("id")) not in bad]
        if len(kept) != len(rows):
            log.warning("%s: skipping %d eval rows whose audio is listed in %s", path, len(rows) - len(kept),
                        self.file("bad_utts"))
        if not self.exists():
            return [r for _, r in kept]
        utts = self.by_id()
        return [with_clip(r, utts, f"{path}:{n}") for n, r in kept]


def with_clip(row: dict[str, Any], utts: dict[str, Utterance], where: str) -> dict[str, Any]:
    """``row`` with the audio of its ``utt_id`` (and of every ``messages`` audio that names one) from ``utts``."""
    def fill(entry: dict[str, Any], required: bool) -> dict[str, Any]:
        utt_id = entry.get("utt_id")
        if utt_id is None:
            if required:
                raise DataDirError(f"{where}: row '{row.get('id')}' has no 'utt_id'; a data dir's eval manifest names "
                                   "each clip by its wav.scp id and takes the audio from wav.scp. Fix: rerun data "
                                   "preparation (./run.sh --stage 1 --stop_stage 1) to rewrite the manifest")
            return entry
        utt = utts.get(str(utt_id))
        if utt is None:
            raise DataDirError(f"{where}: utt_id '{utt_id}' is not an utterance of this data dir (not in its wav.scp "
                               "or segments); the manifest belongs to another set: rerun data preparation (stage 1)")
        out = {k: v for k, v in entry.items() if k not in ("start", "end", "duration")}
        out["audio"] = utt.audio
        if utt.start is not None:
            out["start"], out["end"] = utt.start, utt.end
        if utt.duration is not None:
            out["duration"] = utt.duration
        return out

    if not row.get("messages"):
        return fill(row, required=True)
    messages = [{**m, "audios": [fill(dict(a), required=False) for a in (m.get("audios") or [])]} if m.get("audios")
                else m for m in row["messages"]]
    return {**row, "messages": messages}


class UttIndex:
    """The utterances of several data dirs by id, for stages that meet a clip by its id (training, feature cache).

    ``utts`` holds every utterance (bad ones too) and ``bad`` the ``bad_utts`` reasons; an id in two dirs must
    name the same clip (the same wav.scp entry and segment).
    """

    def __init__(self, data_dirs: Iterable[str | os.PathLike] = ()):
        self.dirs = [DataDir(d) for d in data_dirs]
        self.utts: dict[str, Utterance] = {}
        self.bad: dict[str, str] = {}
        home: dict[str, Path] = {}
        for d in self.dirs:
            if not d.path.is_dir():
                raise DataDirError(f"'{d.path}' is not a directory; list the Kaldi data dirs the rows came from")
            for u in d.by_id().values():
                old = self.utts.get(u.id)
                if old is not None and (old.audio, old.start, old.end) != (u.audio, u.start, u.end):
                    raise DataDirError(f"utterance '{u.id}' is in {home[u.id]} and {d.path} with different audio; "
                                       "an utt id must name one clip: list only one of the two data dirs")
                self.utts[u.id], home[u.id] = u, d.path
            self.bad.update(d.bad_utts())

    def __bool__(self) -> bool:
        return bool(self.dirs)

    def __repr__(self) -> str:
        return f"UttIndex({[str(d.path) for d in self.dirs]})"


# ----------------------------------------------------------------------------------------------- writing


def _atomic_write(path: Path, lines: Iterable[str]) -> None:
    from toolkit.files import atomic_write

    with atomic_write(path) as f:
        for line in lines:
            f.write(line + "\n")


EMPTY_SPEECH_TEXT = ("speech clip with empty text; give its transcript in 'text', or set its metadata category "
                     "to 'sound'/'music' if it holds no speech")


def is_speech_without_text(u: Utterance, has_text: bool) -> bool:
    """A clip counted as speech (metadata ``category`` 'speech', the default) whose ``text`` line is empty.

    Its seed description would say nothing was said and training would pair speech with no words;
    the writer refuses it and stage 2 lists it in ``bad_utts``.
    """
    return u.metadata.get("category", "speech") == "speech" and has_text and u.text is not None and not u.text.strip()


def check_utterances(utterances: list[Utterance], where: str) -> list[str]:
    """Every problem that would make a broken data dir (empty list: fine)."""
    problems = []
    seen: set[str] = set()
    has_text = any(u.text is not None for u in utterances)
    for index, u in enumerate(utterances):
        label = f"{where}: utterance #{index} '{u.id}'"
        if not u.id or any(c.isspace() for c in u.id):
            problems.append(f"{label}: ids must be non-empty and contain no whitespace")
        if u.id in seen:
            problems.append(f"{label}: duplicate id")
        seen.add(u.id)
        if not u.audio or "\n" in u.audio:
            problems.append(f"{label}: empty or multi-line audio source")
        if has_text and u.text is None:
            problems.append(f"{label}: has no text while others do; use '' for clips without speech")
        if is_speech_without_text(u, has_text):
            problems.append(f"{label}: {EMPTY_SPEECH_TEXT}")
        if u.text is not None and "\n" in u.text:
            problems.append(f"{label}: text contains a newline")
        if (u.start is None) != (u.end is None) and u.start is None:
            problems.append(f"{label}: has an end time but no start time")
    return problems


def write_data_dir(path: str | os.PathLike, utterances: Iterable[Utterance], dataset: str | None = None) -> DataDir:
    """Write ``utterances`` as a sorted, validated Kaldi data dir and return it.

    Old Kaldi files in ``path`` are replaced (stale ``segments`` or ``utt2dur`` are removed); check
    results (``bad_utts``) and markers are removed too, since they describe the old contents.
    ``dataset`` fills ``metadata["dataset"]`` where an utterance has none.
    """
    out = Path(path)
    utts = sorted(utterances, key=lambda u: kaldi_sort_key(u.id))
    problems = check_utterances(utts, str(out))
    if problems:
        raise DataDirError("refusing to write a broken data dir:\n  " + "\n  ".join(problems[:20])
                           + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""))
    out.mkdir(parents=True, exist_ok=True)
    for name in (*KALDI_FILES, "bad_utts", "check_notes"):
        if out.joinpath(name).exists():
            out.joinpath(name).unlink()
    use_segments = any(u.start is not None for u in utts)
    if use_segments:
        recordings: dict[str, str] = {}
        for u in utts:
            rec = u.recording or u.id
            if recordings.setdefault(rec, u.audio) != u.audio:
                raise DataDirError(f"{out}: recording '{rec}' is given two sources: {recordings[rec]} and {u.audio}")
        _atomic_write(out / "wav.scp", (f"{r} {recordings[r]}" for r in sorted(recordings, key=kaldi_sort_key)))
        _atomic_write(out / "segments", (
            f"{u.id} {u.recording or u.id} {u.start or 0.0:.3f} {-1 if u.end is None else round(u.end, 3)}" for u in utts))
    else:
        _atomic_write(out / "wav.scp", (f"{u.id} {u.audio}" for u in utts))
    if any(u.text is not None for u in utts):
        _atomic_write(out / "text", (f"{u.id} {u.text}".rstrip() for u in utts))
    speakers = {u.id: (u.speaker or u.id) for u in utts}  # Kaldi: no speaker known -> the utterance is its own
    _atomic_write(out / "utt2spk", (f"{u} {s}" for u, s in speakers.items()))
    spk2utt: dict[str, list[str]] = {}
    for u, s in speakers.items():
        spk2utt.setdefault(s, []).append(u)
    _atomic_write(out / "spk2utt", (f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt, key=kaldi_sort_key)))
    if all(u.duration is not None for u in utts) and utts:
        _atomic_write(out / "utt2dur", (f"{u.id} {u.duration:.3f}" for u in utts))
    write_jsonl(out / "metadata.jsonl", (
        {"id": u.id, "dataset": u.metadata.get("dataset", dataset),
         **{k: v for k, v in u.metadata.items() if k not in ("id", "dataset")}} for u in utts))
    result = DataDir(out)
    result.validate()
    return result


def write_table(path: str | os.PathLike, table: dict[str, Any], sep: str = " ") -> None:
    """Write an ``<id><sep><value>`` table sorted in Kaldi order (used for utt2dur, bad_utts ...)."""
    _atomic_write(Path(path), (f"{k}{sep}{table[k]}" for k in sorted(table, key=kaldi_sort_key)))
