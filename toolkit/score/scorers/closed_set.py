"""Closed-set accuracy: the answer must name exactly one of the options listed in the question.

Used by the embedded eval's perception questions ("Which musical instrument is playing? Is it violin, flute,
piano or cello?"). An answer that names no option, or hedges over several ("violin or cello"), scores wrong;
``extracted`` keeps the one option named (None otherwise) so a single answer can be inspected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from toolkit.score.base import SCORERS, ResultRow, Scorer, ScoreError, percent


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^\w]+", " ", text.lower()).split()) + " "


def options_named(answer: str, options: Sequence[str]) -> list[str]:
    """The options that occur in ``answer`` as whole words (case and punctuation ignored)."""
    haystack = _words(answer)
    return [o for o in options if _words(o).strip() and _words(o) in haystack]


def closed_set_verdict(answer: str, options: Sequence[str], reference: str) -> tuple[str | None, bool]:
    """(the single option named or None, whether it is the reference)."""
    named = options_named(answer, options)
    extracted = named[0] if len(named) == 1 else None
    return extracted, extracted is not None and _words(extracted) == _words(reference)


@SCORERS.register("closed_set")
class ClosedSetScorer(Scorer):
    """Share of answers naming exactly one option, the right one; ``no_single_option`` is reported beside it."""

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        correct = unparsed = 0
        for r in rows:
            options = r.get("choices")
            if not options or r.get("reference") is None:
                raise ScoreError(f"row id={r.get('id')!r}: metric closed_set needs 'choices' (the options) and 'reference'")
            extracted, ok = closed_set_verdict(r.get("prediction") or "", options, str(r["reference"]))
            r["extracted"], r["score"] = extracted, int(ok)
            correct += ok
            unparsed += extracted is None
        extra = {"no_single_option_rate": percent(unparsed, len(rows))}
        return [ResultRow("", "closed_set", percent(correct, len(rows)), len(rows), None, extra)]
