"""SAKURA's judging rules (github.com/ckyang1124/SAKURA @ a1fdb14, ``evaluation/``), shared by stage 7 and
``score_predictions``.

The official pipeline: ``llm_judge.py`` sends each (question, label, response) to gpt-4o-2024-11-20
with its system prompt and user template (``judge_prompts.yaml``, entry ``sakura``: byte for byte,
temperature 0.0 and top_p 0.9 in the request, max_tokens recorded but never sent), cuts
``Explanation: ...\\nJudgement: ...`` out of the reply with one regular expression (otherwise both become
"No extracted ..."), and ``calculate_acc.py`` counts a judgement as correct only when
``judgement.lower().strip()`` is exactly ``correct``, incorrect when it is exactly ``incorrect``, and
anything else (``"correct"`` in quotes, ``correct.``, ``**correct**``) as invalid: printed, kept in the
total, never correct.  Accuracy = correct / total * 100, printed with two decimals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from toolkit.score.judges.base import JudgeProtocol

JUDGE_MODEL = "gpt-4o-2024-11-20"
PROMPT_NAME = "sakura"
NO_EXPLANATION = "No extracted explanation"
NO_JUDGEMENT = "No extracted judgement"
_JUDGEMENT_RE = re.compile(r"Explanation: (.*?)\nJudgement: (.*?)(?:\n\n|$)", re.DOTALL)


def extract_judgement(text: str) -> dict[str, str]:
    """``{"Explanation": ..., "Judgement": ...}`` as ``llm_judge.py`` extracts them (its placeholders when absent)."""
    m = _JUDGEMENT_RE.search(text)
    if not m:
        return {"Explanation": NO_EXPLANATION, "Judgement": NO_JUDGEMENT}
    return {"Explanation": m.group(1), "Judgement": m.group(2)}


def judgement_verdict(judgement: str) -> str:
    """``correct``, ``incorrect`` or ``invalid``, exactly as ``calculate_acc.py`` (no other stripping)."""
    value = judgement.lower().strip()
    return value if value in ("correct", "incorrect") else "invalid"


def judgement_score(reply: str) -> float | None:
    """1.0 / 0.0 for a judge reply whose judgement is correct / incorrect, ``None`` when invalid."""
    verdict = judgement_verdict(extract_judgement(reply)["Judgement"])
    return {"correct": 1.0, "incorrect": 0.0}.get(verdict)


def judge_messages(instruction: str, label: str, response: str) -> list[dict[str, str]]:
    """The official conversation for one item (system prompt + filled user template)."""
    from toolkit.score.judges.prompts import get_prompt

    return get_prompt(PROMPT_NAME).messages(instruction, label, response)


def judge_protocol() -> JudgeProtocol:
    """How the official call asks: one answer, sending temperature 0.0 and top_p 0.9."""
    from toolkit.score.judges.prompts import get_prompt

    protocol = get_prompt(PROMPT_NAME).protocol
    assert protocol is not None, f"judge_prompts.yaml: '{PROMPT_NAME}' lost its protocol"
    return protocol


def accuracy_report(judgements: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """``calculate_acc.py``'s counts and printed lines for ``{audio key: judgement string}`` (file order)."""
    correct = incorrect = 0
    lines = []
    for key, judgement in judgements.items():
        verdict = judgement_verdict(judgement)
        if verdict == "correct":
            correct += 1
        elif verdict == "incorrect":
            incorrect += 1
        else:
            lines.append(f"Invalid judgement for key: {key}")
    total = len(judgements)
    acc = (correct / total) * 100 if total else float("nan")
    lines += [f"Correct count: {correct}", f"Incorrect count: {incorrect}", f"Total count: {total}",
              f"Accuracy: {acc:.2f}%"]
    summary = {"accuracy": round(acc, 2), "correct": correct, "incorrect": incorrect,
               "invalid": total - correct - incorrect, "total": total}
    return summary, lines
