"""Scorers: one per ``metric`` name found in decode output, and :func:`score_file` that runs them.

Decoding writes one JSON row per utterance (``{"id", "dataset", "prompt", "prediction", "reference",
"metric", "choices", ...extra fields copied from the eval manifest}``).  Rows are grouped by their
``metric`` field and each group goes to the scorer registered under that name::

    @SCORERS.register("wer")
    class WerScorer(Scorer):
        def __init__(self, normalizer: str = "auto"): ...
        def score(self, rows): ...   # -> list[ResultRow]

A scorer returns :class:`ResultRow` objects (one or several: IFEval reports prompt- and
instruction-level rates) and may add per-utterance fields to the rows it was given (``row["score"]``),
which :func:`score_file` writes next to the results so a single answer can be inspected.

Judged metrics (``metric: judge``) need a judge (:mod:`toolkit.score.judges`); every row they
produce names it, and without one they are reported as skipped, never silently dropped.
"""

from __future__ import annotations

import abc
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.jsonl import read_jsonl, write_jsonl  # noqa: F401  (re-exported: the one JSONL reader/writer)
from toolkit.registry import Registry


@dataclass
class ResultRow:
    """One number of a results table.

    Args:
        set: eval set name (``mmau_test_mini``); a breakdown adds ``[field=value]``.
        metric: what the value is (``wer``, ``mmau``, ``ifeval_prompt_strict`` ...).
        value: the score, in percent for rates and accuracies, NaN when skipped.
        count: how many utterances it covers.
        judge: the judge that produced it (``None`` for rule-based scores).
        extra: anything worth keeping beside it (parse-failure rate, skipped reason ...).
    """

    set: str
    metric: str
    value: float
    count: int
    judge: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if isinstance(self.value, float) and math.isnan(self.value):
            out["value"] = None  # JSON has no NaN
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ResultRow":
        value = data.get("value")
        return cls(
            set=data["set"],
            metric=data["metric"],
            value=float("nan") if value is None else float(value),
            count=int(data.get("count", 0)),
            judge=data.get("judge"),
            extra=dict(data.get("extra") or {}),
        )


class Scorer(abc.ABC):
    """Base class: turn the decode rows of one metric into :class:`ResultRow` values.

    ``score`` gets the rows of one eval set (or one breakdown group) and returns rows whose ``set``
    field is left empty (``""``); :func:`score_file` fills it in.  ``needs_judge`` scorers get the
    judge at build time (argument ``judge``).
    """

    needs_judge: bool = False

    @abc.abstractmethod
    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        """Result rows for the decode rows of one eval set or breakdown group."""


SCORERS = Registry("scorer", base=Scorer, variable="SCORERS", components="toolkit.score.scorers")


class ScoreError(ValueError):
    """Decode output that cannot be scored (missing field, unknown metric ...)."""


def percent(numerator: float, denominator: int) -> float:
    """``100 * numerator / denominator``, NaN for an empty set (never a ZeroDivisionError)."""
    return 100.0 * numerator / denominator if denominator else float("nan")


def build_scorer(metric: str, options: Mapping[str, Any] | None = None, judge: Any = None) -> Scorer:
    """Build the scorer of ``metric`` with its config options (``score.scorers.<metric>``)."""
    node = {"name": metric, **dict(options or {})}
    cls = SCORERS.get(metric)
    if cls.needs_judge:
        return SCORERS.build(node, where=f"score.scorers.{metric}", judge=judge)
    return SCORERS.build(node, where=f"score.scorers.{metric}")


DEFAULT_BREAKDOWN = ("dataset", "task", "difficulty", "modality", "category")


def score_rows(
    rows: list[dict[str, Any]],
    set_name: str,
    scorer_options: Mapping[str, Mapping[str, Any]] | None = None,
    judge: Any = None,
    breakdown: Sequence[str] = DEFAULT_BREAKDOWN,
) -> list[ResultRow]:
    """Score decode rows of one eval set: group by ``metric``, run each scorer, add breakdowns.

    A breakdown field (``dataset``, MMAU's ``task`` and ``difficulty`` ...) adds one result per
    value, as ``<set>[task=sound]``, when the rows carry at least two distinct values of it.
    Judged metrics without a judge are reported with value NaN and the reason in ``extra``.
    """
    scorer_options = dict(scorer_options or {})
    by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i, row in enumerate(rows):
        metric = row.get("metric")
        if not metric:
            raise ScoreError(f"{set_name}: row {i} (id={row.get('id')!r}) has no 'metric' field; the eval manifest must set one")
        by_metric[str(metric)].append(row)
    unknown = sorted(m for m in by_metric if m not in SCORERS)
    if unknown:
        raise ScoreError(
            f"{set_name}: no scorer for metric(s) {unknown}. Registered scorers: {', '.join(SCORERS.choices())}."
        )

    results: list[ResultRow] = []
    for metric, group in by_metric.items():
        cls = SCORERS.get(metric)
        if cls.needs_judge and judge is None:
            results.append(
                ResultRow(set_name, metric, float("nan"), len(group), None,
                          {"skipped": "judged metric and no judge configured: set score.judge (hf, vllm or openai)"})
            )
            continue
        scorer = build_scorer(metric, scorer_options.get(metric), judge)
        decode_errors = sum(1 for r in group if r.get("error"))
        for res in scorer.score(group):
            res.set = set_name
            if decode_errors:  # unreadable audio: scored as an empty answer, and said so
                res.extra["decode_errors"] = decode_errors
            results.append(res)
        for fld in breakdown:
            values = sorted({str(r[fld]) for r in group if r.get(fld) is not None})
            if len(values) < 2:
                continue
            for value in values:
                sub = [r for r in group if str(r.get(fld)) == value]
                for res in scorer.score(sub):
                    res.set = f"{set_name}[{fld}={value}]"
                    results.append(res)
    return results


def score_file(
    decode_jsonl: str | os.PathLike,
    set_name: str | None = None,
    scorer_options: Mapping[str, Mapping[str, Any]] | None = None,
    judge: Any = None,
    breakdown: Sequence[str] = DEFAULT_BREAKDOWN,
    details_out: str | os.PathLike | None = None,
) -> list[ResultRow]:
    """Score one decode output file.

    Args:
        decode_jsonl: the decode output (JSONL).
        set_name: eval set name; default: the file's stem, or its folder's name when the stem
            is a generic one (``decode``, ``hyp``, ``output``, ``predictions``).
        scorer_options: per-metric constructor options, e.g. ``{"wer": {"normalizer": "basic"}}``.
        judge: a :class:`toolkit.score.judges.base.Judge` for ``metric: judge`` rows.
        breakdown: fields to break results down by (see :func:`score_rows`).
        details_out: where to write the rows with their per-utterance scores (JSONL), if given.
    """
    path = Path(decode_jsonl)
    if not path.is_file():
        raise ScoreError(f"decode output not found: {path}. Run the decoding stage first or fix score.inputs")
    if set_name is None:
        set_name = path.parent.name if path.stem in {"decode", "hyp", "output", "predictions", "results"} else path.stem
    rows = read_jsonl(path)
    if not rows:
        raise ScoreError(f"{path}: no rows; decoding produced nothing for this set")
    results = score_rows(rows, set_name, scorer_options, judge, breakdown)
    if details_out is not None:
        write_jsonl(details_out, rows)
    return results
