"""What a corpus preparer is, the ``CORPORA`` registry, and helpers every preparer shares.

A preparer turns one corpus's standard download layout into Kaldi data dirs, one per split::

    prep = CORPORA.build({"name": "librispeech", "source_dir": "/corpora/LibriSpeech"})
    sets = prep.prepare("data")              # {"train-clean-100": DataDir("data/train-clean-100"), ...}

A subclass implements :meth:`CorpusPreparer.collect` (split name -> utterances) and, where the corpus
has natural evaluation questions, :meth:`CorpusPreparer.eval_tasks`. Attribute values are mapped to
readable names through a small table in the preparer's own file (CREMA-D ``ANG`` -> ``Angry``), so
the seed descriptions read like DeSTA's (``Emotion: Angry, Gender: Female``).
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit.data.datadir import DataDir, Utterance, write_data_dir, write_jsonl
from toolkit.data.section import STAGE_MARKERS
from toolkit.jsonl import stable_hash
from toolkit.registry import Registry

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """A corpus tree that does not look like the standard download; the message says what is missing."""


class CorpusPreparer(abc.ABC):
    """Base class of corpus preparers (registered in ``CORPORA``).

    Class attributes a subclass sets:
        dataset: the ``dataset`` value written into metadata.jsonl and manifests.
        eval_splits: the splits that also get an ``eval.jsonl`` (when :meth:`eval_tasks` gives rows).
    """

    dataset: str = ""
    eval_splits: tuple[str, ...] = ("test",)

    @abc.abstractmethod
    def collect(self, work_dir: Path) -> dict[str, list[Utterance]]:
        """Return split name -> utterances. ``work_dir`` is where a preparer may write files it generates."""

    def eval_tasks(self, split: str, utterances: Sequence[Utterance]) -> list[dict[str, Any]]:
        """Eval manifest rows for ``split`` (the brief's format); none by default."""
        return []

    def prepare(self, out_dir: str | os.PathLike, sets: Sequence[str] | None = None, prefix: str = "") -> dict[str, DataDir]:
        """Write ``<out_dir>/<prefix><split>/`` for every split (or only ``sets``) and return the data dirs."""
        out = Path(out_dir)
        splits = self.collect(out / "local" / (self.registered_name if hasattr(self, "registered_name") else self.dataset))
        if sets is not None:
            unknown = sorted(set(sets) - set(splits))
            if unknown:
                raise CorpusError(f"{type(self).__name__}: unknown split(s) {unknown} in data.sets; "
                                  f"this corpus has: {', '.join(splits)}")
            splits = {name: splits[name] for name in sets}
        result = {}
        for split, utts in splits.items():
            if not utts:
                if sets is not None:
                    raise CorpusError(f"{type(self).__name__}: split '{split}' (asked for in data.sets) came out "
                                      "empty; check the source directory holds the files that split needs")
                log.warning("%s: split '%s' is empty, no data dir written for it", type(self).__name__, split)
                continue
            set_dir = out / f"{prefix}{split}"
            for marker in STAGE_MARKERS:  # the old markers describe the old contents
                (set_dir / marker).unlink(missing_ok=True)
            result[split] = write_data_dir(set_dir, utts, dataset=self.dataset)
            rows = self.eval_tasks(split, utts) if split in self.eval_splits else []
            eval_path = set_dir / "eval.jsonl"
            if rows:
                write_jsonl(eval_path, rows)
            elif eval_path.exists():
                eval_path.unlink()
            log.info("%s: %d utterances%s", set_dir, len(utts), f", {len(rows)} eval rows" if rows else "")
        return result


CORPORA = Registry("corpus", base=CorpusPreparer, variable="CORPORA", components="toolkit.data.corpora")


# ------------------------------------------------------------------------------------------- helpers


def require(path: Path, what: str, fix: str = "point source_dir at the unpacked corpus") -> Path:
    """Return ``path`` if it exists, otherwise raise a :class:`CorpusError` naming it."""
    if not path.exists():
        raise CorpusError(f"{what} not found: {path}. Fix: {fix}")
    return path


def normalise(value: str, table: Mapping[str, str], where: str) -> str:
    """Map a corpus code to its readable name; an unknown code lists the known ones."""
    if value not in table:
        raise CorpusError(f"{where}: unknown value '{value}'; known: {', '.join(sorted(table))}. "
                          "Add it to the mapping table in the preparer's file")
    return table[value]


def hash_split(key: str, dev_percent: int = 10, test_percent: int = 10) -> str:
    """Deterministic train/dev/test choice for corpora without an official split (hash of ``key``)."""
    bucket = stable_hash(key) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + dev_percent:
        return "dev"
    return "train"


def eval_row(
    utt: Utterance,
    prompt: str,
    reference: str,
    metric: str,
    choices: list[str] | None = None,
    text: str | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """One eval manifest row (see the team's data contract). ``text`` is a given transcript or None (ASR).

    ``utt_id`` is the data dir id of the clip, its only reference to the audio: decoding reads the audio from
    ``wav.scp`` (:meth:`toolkit.data.datadir.DataDir.eval_rows`); ``id`` is unique per row.
    """
    row = {"id": utt.id if task is None else f"{utt.id}#{task}", "utt_id": utt.id, "dataset": utt.dataset,
           "text": text, "prompt": prompt, "reference": reference, "metric": metric, "choices": choices}
    if task is not None:  # one clip may carry several questions; the row id then names the task
        row["task"] = task
    return row


def label_tasks(
    utterances: Iterable[Utterance],
    key: str,
    prompt: str,
    task: str,
    with_choices: bool = True,
    with_text: bool = False,
) -> list[dict[str, Any]]:
    """A label-accuracy question about metadata ``key`` for every utterance that has it.

    ``with_choices`` lists every label seen in the split in the prompt (sorted), which makes a closed
    question a small model can answer; ``with_text`` passes the transcript (skips ASR).
    """
    utts = [u for u in utterances if u.metadata.get(key) not in (None, "")]
    labels = sorted({str(u.metadata[key]) for u in utts})
    rows = []
    for u in utts:
        full_prompt = prompt + (f" Choose one of: {', '.join(labels)}." if with_choices else "")
        rows.append(eval_row(u, full_prompt, str(u.metadata[key]), "label_accuracy",
                             choices=labels if with_choices else None,
                             text=u.text if with_text else None, task=task))
    return rows


def audio_files(root: Path, suffixes: Sequence[str]) -> list[Path]:
    """All files under ``root`` with one of ``suffixes`` (case-insensitive), sorted."""
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes))
