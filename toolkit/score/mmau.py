"""MMAU's string-match rule, reproduced rule for rule from the official ``evaluation.py``
(github.com/Sakshi113/MMAU, function ``string_match``; DeSTA2.5-Audio scores MMAU with a copy of it).

The rule works on *sets* of word tokens, so word order and repetition do not matter:

1. tokens of a text = the set of ``\\b\\w+\\b`` matches of its lower-cased form (``\\w`` is Unicode
   word characters: letters, digits, underscore; punctuation splits words, "don't" -> {don, t});
2. an empty prediction (no tokens) is wrong;
3. "incorrect tokens" = the union, over every choice whose token set differs from the answer's,
   of that choice's tokens minus the answer's tokens (a choice with the same tokens as the
   answer, the answer itself included, adds nothing);
4. correct  <=>  every answer token is in the prediction  AND  no incorrect token is.

Consequences kept on purpose (they are part of the benchmark): a prediction that names the right
option but also mentions a word unique to a wrong option is wrong ("Man, not Woman" with choices
Man/Woman); extra words that appear in no choice are harmless; a wrong choice whose words are all
shared with the answer ("A woman" vs answer "An adult woman") adds no incorrect tokens.

MMAR (github.com/ddlBoJack/MMAR, ``code/evaluation.py``) scores with the same rule and the same
printout, grouped by modality and category instead of task and difficulty: :func:`accuracy_report`
serves both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\b\w+\b")


def mmau_tokens(text: str) -> set[str]:
    """The MMAU token set of ``text``: lower-case, ``\\b\\w+\\b`` matches, as a set."""
    return set(_TOKEN.findall((text or "").lower()))


def mmau_verdict(answer: str, prediction: str, choices: Sequence[str]) -> tuple[bool, str]:
    """MMAU's rule with the reason: ``(correct, why)``; :func:`mmau_string_match` is its first half."""
    prediction_tokens = mmau_tokens(prediction)
    answer_tokens = mmau_tokens(answer)
    if not prediction_tokens:
        return False, "the prediction has no word tokens"
    incorrect_tokens: set[str] = set()
    for choice in choices:
        choice_tokens = mmau_tokens(choice)
        if choice_tokens != answer_tokens:
            incorrect_tokens |= choice_tokens - answer_tokens
    missing = sorted(answer_tokens - prediction_tokens)
    wrong = sorted(prediction_tokens & incorrect_tokens)
    if missing and wrong:
        return False, f"answer tokens {missing} missing and wrong-choice tokens {wrong} present"
    if missing:
        return False, f"answer tokens {missing} missing"
    if wrong:
        return False, f"wrong-choice tokens {wrong} present"
    return True, "every answer token present, no token of a wrong choice"


def mmau_string_match(answer: str, prediction: str, choices: Sequence[str]) -> bool:
    """True when ``prediction`` counts as the right ``answer`` among ``choices`` under MMAU's rule."""
    return mmau_verdict(answer, prediction, choices)[0]


def mmau_selected_choice(prediction: str, choices: Sequence[str]) -> str | None:
    """The first choice the rule would accept ``prediction`` as (``None``: it matches none)."""
    return next((c for c in choices if mmau_string_match(c, prediction, choices)), None)


@dataclass
class GroupTable:
    """One "X-wise Accuracy" block of the MMAU/MMAR printout.

    Args:
        title: the block's heading (``"Task-wise Accuracy:"``).
        field: the item field grouped by (``task``, ``difficulty``, ``sub-category``).
        names: the official fixed list of values, in print order; ``None`` for the values met in the
            file, in first-seen order (the official sub-category block).
        required: an item must carry ``field`` (the official code raises KeyError otherwise);
            ``False`` for sub-category, which it reads with ``.get``.
    """

    title: str
    field: str
    names: tuple[str, ...] | None
    required: bool = True


def accuracy_report(
    verdicts: Sequence[tuple[Mapping[str, Any], bool]], tables: Sequence[GroupTable],
) -> tuple[dict[str, Any], list[str]]:
    """The MMAU/MMAR summary of scored items: a flat summary and the printout's lines.

    ``verdicts`` holds ``(item, correct)`` for every item the official loop scores (items without a
    prediction are skipped before this, as there).  Lines reproduce the official prints: blocks in
    order, each value as ``"<name> : <acc:.2f>% over <n> samples"`` (an empty group prints 0.00),
    then the total and the "No prediction count" line, which the official loop never increments.
    In the summary an empty group is ``None`` (no figure), sub-categories are ``sub-category:<name>``.
    """
    total = len(verdicts)
    correct = sum(ok for _, ok in verdicts)
    summary: dict[str, Any] = {"total": _pct2(correct, total), "count": total}
    lines: list[str] = []
    for table in tables:
        counts: dict[str, list[int]] = {name: [0, 0] for name in (table.names or ())}
        for item, ok in verdicts:
            value = item.get(table.field)
            if value is None and not table.required:
                continue
            cell = counts.setdefault(str(value), [0, 0])
            cell[0] += ok
            cell[1] += 1
        lines += ["*" * 30, table.title]
        prefix = "" if table.required else f"{table.field}:"
        for name, (hits, n) in counts.items():
            lines.append(f"{name} : {_pct2(hits, n) if n else 0:.2f}% over {n} samples")
            summary[prefix + name] = _pct2(hits, n) if n else None
    lines += ["*" * 30, f"Total Accuracy: {summary['total']:.2f}% over {total} samples", "*" * 30,
              "No prediction count: 0"]
    return summary, lines


def _pct2(hits: int, n: int) -> float:
    """A percentage as the official scorers print it (``f"{x:.2f}"``), back as a float."""
    return float(f"{(hits / n) * 100:.2f}")  # the official operation order, bit for bit


def strip_prefixes(prediction: str, prefixes: Sequence[str]) -> str:
    """Remove every occurrence of each prefix string, then surrounding blanks.

    DeSTA2.5-Audio's MMAU script does ``response.replace("The correct answer is: ", "").strip()``
    before matching (its prompt asks for that format); ``score.scorers.mmau.strip_prefixes``
    reproduces it.  The official MMAU scorer strips nothing (the default).
    """
    for prefix in prefixes:
        prediction = prediction.replace(prefix, "")
    return prediction.strip()
