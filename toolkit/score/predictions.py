"""Scoring a prediction file in a benchmark's OWN format, by that benchmark's official rules.

Stage 7 (:mod:`toolkit.score.base`) scores our decode output.  A researcher comparing with a paper
often holds the file the benchmark's own scorer reads instead (MMAU's JSON list with
``model_prediction``, VoiceBench's per-subset JSONL, ...).  A :class:`PredictionScorer` reads that
file as it is and returns one :class:`ItemVerdict` per item plus the official aggregate figures
under the official names (:class:`OfficialScore`)::

    @PREDICTION_SCORERS.register("mmau")
    class MmauPredictions(PredictionScorer):
        official = "Sakshi113/MMAU@<commit> evaluation.py"
        expected_format = "a JSON list of objects with id, choices, answer, model_prediction, task"

        def __init__(self, subset=None, judge=None, seed=0, strip_prefixes=None):
            super().__init__(subset, judge, seed)
            ...

        def score_file(self, path): ...

Each benchmark's scorer lives in ``toolkit/score/official/<benchmark>.py``; importing that package
registers them all.  The rule functions themselves are shared with the stage-7 scorers, so each rule
exists once.  ``python -m toolkit.bin.score_predictions`` is the command line.
"""

from __future__ import annotations

import abc
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.files import atomic_write_text
from toolkit.jsonl import JsonlError, iter_jsonl, write_jsonl
from toolkit.registry import Registry


class PredictionFormatError(ValueError):
    """A prediction file that is not in the format its benchmark's official scorer reads."""


@dataclass
class ItemVerdict:
    """The verdict on one item of a prediction file.

    Args:
        id: the item's own id in that file (its ``id`` field, SAKURA's audio key, Speech-IFEval's
            ``key``, else the 0-based row index as a string).
        extracted: what the official rule parsed out of the answer (a letter, the matched choice,
            a judge score ...); ``None`` when nothing parses.
        score: 1.0/0.0 for right/wrong, a rate or rating where the benchmark scores that way,
            ``None`` when the item is not scored (a judged item without a judge).
        reason: one short sentence saying why, for a person reading per_item.jsonl.
    """

    id: str
    extracted: Any
    score: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        score = self.score
        if isinstance(score, float) and math.isnan(score):
            score = None  # JSON has no NaN
        return {"id": self.id, "extracted": self.extracted, "score": score, "reason": self.reason}


@dataclass
class OfficialScore:
    """A scored prediction file.

    Args:
        items: one verdict per item, in file order.
        summary: a flat object of the official aggregate figures under the official names
            (``{"total": 66.0, "speech": 71.17, ..., "count": 1000}``).
        lines: the summary as the official scorer prints it, one string per line.
    """

    items: list[ItemVerdict]
    summary: dict[str, Any]
    lines: list[str]


class PredictionScorer(abc.ABC):
    """Base class: score one prediction file in the benchmark's own format.

    Args:
        subset: the part of the benchmark the file holds, where the rules differ by part
            (VoiceBench's subset, a Dynamic-SUPERB task ...); ``None`` where not needed.
        judge: a :class:`toolkit.score.judges.base.Judge` for the judged parts (``None``: those
            items are reported unscored, never silently dropped).
        seed: seeds every random draw the official code makes unseeded.

    Subclasses name their own options as keyword arguments after these three and pass the three on
    with ``super().__init__(subset, judge, seed)``; an option a benchmark does not have fails here
    with the list of the ones it has.
    """

    #: ``"owner/repo@commit path"``: the official code the rules were written from.
    official: str = ""
    #: one sentence describing the file the official scorer reads (used in format errors).
    expected_format: str = ""

    def __init__(self, subset: str | None = None, judge: Any = None, seed: int = 0, **options: Any):
        if options:
            from toolkit.config import signature_keys

            names, _, _ = signature_keys(type(self))
            valid = sorted(names - {"subset", "judge", "seed"})
            raise PredictionFormatError(
                f"{getattr(type(self), 'registered_name', type(self).__name__)}: unknown option(s) "
                f"{', '.join(sorted(options))}; this benchmark's options are: {', '.join(valid) or '(none)'}"
            )
        self.subset = subset
        self.judge = judge
        self.seed = seed

    @property
    def name(self) -> str:
        return getattr(type(self), "registered_name", type(self).__name__)

    @abc.abstractmethod
    def score_file(self, path: Path) -> OfficialScore:
        """Score the prediction file ``path``."""

    # -- helpers shared by the benchmarks -------------------------------------------------------

    def format_error(self, path: os.PathLike | str, where: str, problem: str) -> PredictionFormatError:
        """One paragraph: the file, the item, what is wrong and the format expected."""
        return PredictionFormatError(
            f"{path}: {where}: {problem}. {self.name} predictions must be {self.expected_format} "
            f"(the file the official scorer reads: {self.official})."
        )

    def require(self, path: os.PathLike | str, row: Any, index: int, fields: Sequence[str]) -> None:
        """Fail naming the first missing field of ``row`` (item ``index`` of ``path``)."""
        if not isinstance(row, Mapping):
            raise self.format_error(path, f"item {index}", f"is a {type(row).__name__}, not an object")
        missing = [f for f in fields if f not in row]
        if missing:
            raise self.format_error(path, f"item {index}", f"field '{missing[0]}' is missing "
                                    f"(missing: {', '.join(missing)}; present: {', '.join(sorted(row)) or 'none'})")

    def read_json_list(self, path: os.PathLike | str) -> list[Any]:
        """A file holding one JSON list (MMAU, MMAR); anything else fails with the expected format."""
        path = Path(path)
        if not path.is_file():
            raise PredictionFormatError(f"{path}: prediction file not found; fix --predictions")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise self.format_error(path, "whole file", f"is not valid JSON ({err})") from None
        if not isinstance(data, list):
            raise self.format_error(path, "whole file", f"holds a JSON {type(data).__name__}, not a list")
        if not data:
            raise self.format_error(path, "whole file", "is an empty list")
        return data

    def read_jsonl(self, path: os.PathLike | str) -> list[dict[str, Any]]:
        """A JSONL file (VoiceBench, Speech-IFEval, Dynamic-SUPERB); a bad line fails naming it."""
        path = Path(path)
        if not path.is_file():
            raise PredictionFormatError(f"{path}: prediction file not found; fix --predictions")
        try:
            rows = list(iter_jsonl(path))
        except JsonlError as err:
            raise self.format_error(path, "a line", str(err)) from None
        if not rows:
            raise self.format_error(path, "whole file", "has no rows")
        return rows


PREDICTION_SCORERS = Registry("prediction scorer", base=PredictionScorer, variable="PREDICTION_SCORERS",
                              components="toolkit.score.official")


def build_prediction_scorer(
    benchmark: str, subset: str | None = None, judge: Any = None, seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> PredictionScorer:
    """The scorer registered as ``benchmark``; an unknown name lists the registered ones."""
    from toolkit.registry import RegistryError

    if benchmark not in PREDICTION_SCORERS:
        raise RegistryError(
            f"unknown benchmark '{benchmark}'. Registered prediction scorers: "
            f"{', '.join(PREDICTION_SCORERS.choices())}. "
            f"Fix --benchmark, or add toolkit/score/official/{benchmark}.py with "
            f"@PREDICTION_SCORERS.register('{benchmark}')."
        )
    cls = PREDICTION_SCORERS.get(benchmark)
    from toolkit.config import signature_keys

    names, _, var_kw = signature_keys(cls)
    own = sorted(names - {"subset", "judge", "seed"})
    unknown = sorted(set(options or {}) - set(own)) if not var_kw else []
    if unknown:
        raise PredictionFormatError(
            f"{benchmark}: unknown option(s) {', '.join(unknown)}; this benchmark's options are: "
            f"{', '.join(own) or '(none)'} (see toolkit/score/official/{benchmark}.py)"
        )
    return cls(subset=subset, judge=judge, seed=seed, **dict(options or {}))


def accuracy(scores: Iterable[float | None], digits: int | None = None) -> float:
    """Percentage of 1.0 verdicts among scored items (NaN for none); rounded when ``digits`` is given."""
    values = [s for s in scores if s is not None]
    if not values:
        return float("nan")
    value = 100.0 * sum(values) / len(values)
    return round(value, digits) if digits is not None else value


def write_official_score(result: OfficialScore, out_dir: os.PathLike | str) -> tuple[Path, Path]:
    """Write ``out_dir/per_item.jsonl`` and ``out_dir/summary.json``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_item = out / "per_item.jsonl"
    write_jsonl(per_item, (v.to_dict() for v in result.items))
    summary = out / "summary.json"
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.summary.items()}
    atomic_write_text(summary, json.dumps(clean, indent=2, ensure_ascii=False) + "\n")
    return per_item, summary
