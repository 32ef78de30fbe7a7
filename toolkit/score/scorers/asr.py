"""``wer`` and ``cer``: corpus error rates after the Whisper normaliser (see :mod:`toolkit.metrics`)."""

from __future__ import annotations

from typing import Any

from toolkit.score.base import SCORERS, ResultRow, Scorer
from toolkit.metrics import error_rate, normalize, pick_normalizer


class _ErrorRateScorer(Scorer):
    unit = "word"

    def __init__(self, normalizer: str = "auto"):
        """``normalizer``: ``auto`` (English normaliser when the row's ``language`` is English or
        absent, Basic otherwise), ``english``, ``basic`` or ``none``."""
        self.normalizer = normalizer

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        by_norm: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_norm.setdefault(pick_normalizer(self.normalizer, row.get("language")), []).append(row)
        edits = units = count = empty = 0
        for kind, group in by_norm.items():
            out = error_rate([r.get("reference") or "" for r in group], [r.get("prediction") or "" for r in group],
                             self.unit, kind)
            edits += out["substitutions"] + out["deletions"] + out["insertions"]
            units += out["reference_units"]
            count += out["count"]
            empty += out["empty_references"]
            for r in group:
                one = error_rate([r.get("reference") or ""], [r.get("prediction") or ""], self.unit, kind)
                r["score"] = one["value"] if one["count"] else None
                r["normalized_prediction"] = normalize(r.get("prediction"), kind)
        value = 100.0 * edits / units if units else float("nan")
        extra = {"normalizer": "+".join(sorted(by_norm)), "edits": edits, "reference_units": units}
        if empty:
            extra["empty_references_skipped"] = empty
        return [ResultRow("", self.registered_name, value, count, None, extra)]


@SCORERS.register("wer")
class WerScorer(_ErrorRateScorer):
    """Word error rate in percent (lower is better)."""

    unit = "word"


@SCORERS.register("cer")
class CerScorer(_ErrorRateScorer):
    """Character error rate in percent (lower is better)."""

    unit = "char"
