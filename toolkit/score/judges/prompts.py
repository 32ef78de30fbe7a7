"""Judge prompt templates (``toolkit/score/data/judge_prompts.yaml``) and the parsers of their answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from toolkit.score.judges.base import JudgeError, JudgeProtocol

PROMPTS_FILE = Path(__file__).resolve().parent.parent / "data" / "judge_prompts.yaml"


DEFAULT_PLACEHOLDERS = (("question", "{question}"), ("reference", "{reference}"), ("prediction", "{prediction}"))


@dataclass(frozen=True)
class JudgePrompt:
    """A benchmark's judge prompt: system and user templates, answer parser, where it comes from.

    ``placeholders``: (field, placeholder) pairs in the order they are replaced; a benchmark whose
    official script uses its own placeholder strings and order keeps them (SAKURA replaces
    ``[QUESTION]``, then ``[MODEL_GENERATED_RESPONSE]``, then ``[GROUND_TRUTH_ANSWER]``), so an answer
    that contains a placeholder is filled in exactly as the official script fills it.
    ``protocol``: how the official script asks its judge (answers per item, the request's sampling fields,
    aggregation; :class:`~toolkit.score.judges.base.JudgeProtocol`); ``None``: the file names none, and the
    judge answers once, greedily, with its own settings.
    """

    name: str
    system: str
    user: str
    parser: str
    source: str
    placeholders: tuple[tuple[str, str], ...] = DEFAULT_PLACEHOLDERS
    protocol: JudgeProtocol | None = None

    def messages(self, question: str, reference: str, prediction: str) -> list[dict[str, str]]:
        """The chat conversation for one answer (placeholders filled by plain replacement, in order)."""
        values = {"question": question, "reference": reference, "prediction": prediction}
        user = self.user
        for field, placeholder in self.placeholders:
            user = user.replace(placeholder, values[field])
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": user}]

    def parse(self, answer: str) -> float | None:
        """The score in the judge's answer, ``None`` when it does not follow the format."""
        return PARSERS[self.parser](answer)


def parse_sakura(answer: str) -> float | None:
    """SAKURA: ``Explanation: ...\\nJudgement: <correct|incorrect>``, parsed as its ``llm_judge.py`` +
    ``calculate_acc.py`` do (see :mod:`toolkit.score.sakura`); ``None`` for an invalid judgement."""
    from toolkit.score.sakura import judgement_score

    return judgement_score(answer)


def parse_result_yes_no(answer: str) -> float | None:
    """Speech-IFEval: the first ``Result: YES|NO`` (see :func:`toolkit.score.speech_ifeval.extract_result`)."""
    from toolkit.score.speech_ifeval import extract_result

    found = extract_result(answer)
    return None if found is None else float(found.lower() == "yes")


def parse_transcript(answer: str) -> float | None:
    """Speech-IFEval ``wer``: the judge's answer is the transcript itself; it is scored by WER, not here."""
    return None


def parse_yes_no(answer: str) -> float | None:
    """VoiceBench QA: the whole answer is "yes" or "no" (case, blanks and a final period ignored)."""
    text = answer.strip().lower().rstrip(".").strip()
    return {"yes": 1.0, "no": 0.0}.get(text)


def parse_rating(answer: str) -> float | None:
    """VoiceBench open: the answer is a number, or carries ``[[n]]``; anything else is unparsed."""
    try:
        return float(answer.strip())
    except ValueError:
        m = re.search(r"\[\[(\d+)\]\]", answer)
        return float(m.group(1)) if m else None


def majority_yes(answers: list[str]) -> tuple[float, str]:
    """VoiceBench's vote over sampled yes/no answers (``src/evaluator/qa.py`` ``majority_vote``).

    Rule: lower-case each answer (the judge's answers arrive stripped), the most frequent one wins,
    and the item is correct (1.0) only when the winner is exactly ``yes``: ``Yes.`` is a ``yes.``
    and loses.  A tie (possible only when the answers are not all yes/no) is broken by the set order
    of the official code, which Python leaves arbitrary; here the first answer among the tied wins.
    Returns (score, winning answer).
    """
    votes = [a.lower() for a in answers]
    best = max(votes.count(v) for v in votes)
    winner = next(v for v in votes if votes.count(v) == best)
    return float(winner == "yes"), winner


def official_rating(answer: str) -> float | None:
    """VoiceBench's reading of one sampled rating (``src/evaluator/open.py``): ``float(answer)`` as Python
    reads it, else the number in ``[[n]]``; ``None`` where the official code stops with an error."""
    try:
        return float(answer)
    except ValueError:
        m = re.search(r"\[\[(\d+)\]\]", answer)
        return float(int(m.group(1))) if m else None


PARSERS = {
    "sakura_judgement": parse_sakura,
    "result_yes_no": parse_result_yes_no,
    "transcript": parse_transcript,
    "yes_no": parse_yes_no,
    "rating": parse_rating,
}


@lru_cache(maxsize=1)
def load_prompts() -> dict[str, JudgePrompt]:
    """All templates of the prompt file, by name."""
    import yaml

    data = yaml.safe_load(PROMPTS_FILE.read_text(encoding="utf-8"))
    out = {}
    for name, node in data.items():
        if node["parser"] not in PARSERS:
            raise ValueError(f"{PROMPTS_FILE}: prompt '{name}' has unknown parser {node['parser']!r}; "
                             f"known: {', '.join(PARSERS)}")
        placeholders = tuple((f, p) for f, p in node.get("placeholders", DEFAULT_PLACEHOLDERS))
        bad = [f for f, _ in placeholders if f not in ("question", "reference", "prediction")]
        if bad:
            raise ValueError(f"{PROMPTS_FILE}: prompt '{name}' has placeholders for unknown field(s) {bad}; "
                             "known: question, reference, prediction")
        out[name] = JudgePrompt(name, node.get("system", ""), node["user"], node["parser"], node.get("source", ""),
                                placeholders, _protocol(name, node.get("protocol")))
    return out


def _protocol(name: str, node: Any) -> JudgeProtocol | None:
    """A prompt's ``protocol:`` mapping as a :class:`JudgeProtocol` (absent: ``None``; ``{}``: one answer, no
    sampling fields sent)."""
    if node is None:
        return None
    fields = set(JudgeProtocol.__dataclass_fields__)
    if not isinstance(node, dict) or set(node) - fields:
        raise ValueError(f"{PROMPTS_FILE}: prompt '{name}' has protocol {node!r}; it must be a mapping of "
                         f"{', '.join(sorted(fields))} (e.g. {{samples: 3, temperature: 0.5, aggregate: mean}})")
    try:
        return JudgeProtocol(**node)
    except JudgeError as err:
        raise ValueError(f"{PROMPTS_FILE}: prompt '{name}': {err}") from err


def get_prompt(name: str) -> JudgePrompt:
    """The template ``name``; an unknown name lists the known ones."""
    prompts = load_prompts()
    if name not in prompts:
        raise KeyError(f"unknown judge prompt '{name}'; known: {', '.join(sorted(prompts))} (see {PROMPTS_FILE})")
    return prompts[name]
