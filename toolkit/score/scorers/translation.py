"""``bleu`` and ``chrf``: sacrebleu corpus scores (speech translation and captioning-style sets)."""

from __future__ import annotations

from typing import Any

from toolkit.score.base import SCORERS, ResultRow, Scorer
from toolkit.metrics import bleu, chrf


@SCORERS.register("bleu")
class BleuScorer(Scorer):
    """Corpus BLEU (0-100); the chrF of the same rows is reported beside it in ``extra``."""

    def __init__(self, tokenize: str = "13a"):
        """``tokenize``: sacrebleu tokenizer (``13a``; ``zh``, ``ja-mecab``, ``char`` for other scripts)."""
        self.tokenize = tokenize

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        refs = [r.get("reference") or "" for r in rows]
        hyps = [r.get("prediction") or "" for r in rows]
        for r in rows:
            r["score"] = bleu([r.get("reference") or ""], [r.get("prediction") or ""], self.tokenize)
        return [ResultRow("", "bleu", bleu(refs, hyps, self.tokenize), len(rows), None,
                          {"tokenize": self.tokenize, "chrf": chrf(refs, hyps)})]


@SCORERS.register("chrf")
class ChrfScorer(Scorer):
    """Corpus chrF (0-100)."""

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        refs = [r.get("reference") or "" for r in rows]
        hyps = [r.get("prediction") or "" for r in rows]
        for r in rows:
            r["score"] = chrf([r.get("reference") or ""], [r.get("prediction") or ""])
        return [ResultRow("", "chrf", chrf(refs, hyps), len(rows))]
