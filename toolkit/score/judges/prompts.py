"""Judge prompt templates (``toolkit/score/data/judge_prompts.yaml``) and the parsers of their answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PROMPTS_FILE = Path(__file__).resolve().parent.parent / "data" / "judge_prompts.yaml"


DEFAULT_PLACEHOLDERS = (("question", "{question}"), ("reference", "{reference}"), ("prediction", "{prediction}"))


@dataclass(frozen=True)
class JudgePrompt:
    """A benchmark's judge prompt: system and user templates, answer parser, where it comes from.

    ``placeholders``: (field, placeholder) pairs in the order they are replaced; a benchmark whose
    official script uses its own placeholder strings and order keeps them (SAKURA replaces
    ``[QUESTION]``, then ``[MODEL_GENERATED_RESPONSE]``, then ``[GROUND_TRUTH_ANSWER]``), so an answer
    that contains a placeholder is filled in exactly as the official script fills it.
    ``request``: the sampling fields the official judge call sends (``{}``: none, the API's defaults;
    ``None``: the file names none and the judge's own settings apply).
    """

    name: str
    system: str
    user: str
    parser: str
    source: str
    placeholders: tuple[tuple[str, str], ...] = DEFAULT_PLACEHOLDERS
    request: dict[str, Any] | None = None

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
            raise ValueError(f"{PROMPTS_FILE}: prompt '{name}' has unknown parser {node['parser']!r}; known: {', '.join(PARSERS)}")
        placeholders = tuple((f, p) for f, p in node.get("placeholders", DEFAULT_PLACEHOLDERS))
        bad = [f for f, _ in placeholders if f not in ("question", "reference", "prediction")]
        if bad:
            raise ValueError(f"{PROMPTS_FILE}: prompt '{name}' has placeholders for unknown field(s) {bad}; "
                             "known: question, reference, prediction")
        request = node.get("request")
        out[name] = JudgePrompt(name, node.get("system", ""), node["user"], node["parser"], node.get("source", ""),
                                placeholders, dict(request) if request is not None else None)
    return out


def get_prompt(name: str) -> JudgePrompt:
    """The template ``name``; an unknown name lists the known ones."""
    prompts = load_prompts()
    if name not in prompts:
        raise KeyError(f"unknown judge prompt '{name}'; known: {', '.join(sorted(prompts))} (see {PROMPTS_FILE})")
    return prompts[name]
