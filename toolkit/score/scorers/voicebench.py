"""Stage-7 scorers for VoiceBench's rule-based subsets: ``voicebench_mcq`` (mmsu, openbookqa), ``voicebench_bbh``.

Both hand the decode rows, as VoiceBench result rows, to the same functions that score a VoiceBench
result file (:mod:`toolkit.score.voicebench`), so stage 7 and ``score_predictions`` cannot drift
apart.  (advbench is ``refusal``, ifeval is ``ifeval`` with ``ifeval_variant: ifeval``, the judged
subsets are ``judge`` with VoiceBench's protocol: all on the same rule functions.)
"""

from __future__ import annotations

from typing import Any

from toolkit.score.base import SCORERS, ResultRow, Scorer, ScoreError
from toolkit.score.voicebench import evaluate_bbh, evaluate_mcq


def _items(rows: list[dict[str, Any]], metric: str, need_source_id: bool = False) -> tuple[list[dict], list[str]]:
    items, ids = [], []
    for r in rows:
        if r.get("reference") is None:
            raise ScoreError(f"row id={r.get('id')!r} (metric {metric}) has no 'reference'; "
                             f"the eval manifest must give one")
        item = {"response": r.get("prediction") or "", "reference": r["reference"],
                "id": str(r.get("source_id") or r.get("id"))}
        if need_source_id and r.get("source_id") is None:
            raise ScoreError(f"row id={r.get('id')!r}: metric {metric} reads the task from VoiceBench's own item id "
                             f"('source_id' in the manifest, e.g. 'navigate_12'); rebuild the manifest with the "
                             f"voicebench loader")
        items.append(item)
        ids.append(str(r.get("id")))
    return items, ids


def _fill_note(seed: int) -> str:
    return f"seeded random (seed {seed}), as VoiceBench's unseeded random fill"


@SCORERS.register("voicebench_mcq")
class VoiceBenchMcqScorer(Scorer):
    """VoiceBench's mcq accuracy (official letter rule, :func:`toolkit.score.voicebench.extract_mcq`); the
    share of unparsed answers, which get a seeded random letter, is ``parse_failure_rate`` (official ``fail``)."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        items, ids = _items(rows, "voicebench_mcq")
        result = evaluate_mcq(items, ids, self.seed)
        for r, v in zip(rows, result.items):
            r["score"], r["parsed_choice"] = int(v.score), v.extracted
        extra = {"parse_failure_rate": result.summary["fail"], "fill": _fill_note(self.seed)}
        return [ResultRow("", "voicebench_mcq", result.summary["acc"], len(rows), None, extra)]


@SCORERS.register("voicebench_bbh")
class VoiceBenchBbhScorer(Scorer):
    """VoiceBench's bbh accuracy (official phrase rules, :mod:`toolkit.score.voicebench_bbh`)."""

    def __init__(self, seed: int = 0, fix_quirks: bool = False):
        self.seed = seed
        self.fix_quirks = fix_quirks

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        items, ids = _items(rows, "voicebench_bbh", need_source_id=True)
        result = evaluate_bbh(items, ids, self.seed, self.fix_quirks)
        for r, v in zip(rows, result.items):
            r["score"], r["parsed_verdict"] = int(v.score), v.extracted
        extra = {"parse_failure_rate": result.summary["fail"], "fill": _fill_note(self.seed)}
        if self.fix_quirks:
            extra["fix_quirks"] = True
        return [ResultRow("", "voicebench_bbh", result.summary["acc"], len(rows), None, extra)]
