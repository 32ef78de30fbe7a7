"""Judge prompt templates (``toolkit/score/data/judge_prompts.yaml``) and the parsers of their answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from toolkit.score.judges.base import JudgeProtocol

PROMPTS_FILE = Path(__file__).resolve().parent.parent / "data" / "judge_prompts.yaml"


@dataclass(frozen=True)
class JudgePrompt:
    """A benchmark's judge prompt: system and user templates, answer parser, where it comes from, and the
    benchmark's sampling protocol (``None``: one greedy answer)."""

    name: str
    system: str
    user: str
    parser: str
    source: str
    protocol: JudgeProtocol | None = None

    def messages(self, question: str, reference: str, prediction: str) -> list[dict[str, str]]:
        """The chat conversation for one answer (placeholders filled by plain replacement)."""
        user = self.user.replace("{question}", question).replace("{reference}", reference).replace("{prediction}", prediction)
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": user}]

    def parse(self, answer: str) -> float | None:
        """The score in the judge's answer, ``None`` when it does not follow the format."""
        return PARSERS[self.parser](answer)


def parse_sakura(answer: str) -> float | None:
    """SAKURA: ``Explanation: ...\\nJudgement: <correct|incorrect>`` (regex of its llm_judge.py)."""
    m = re.search(r"Explanation: (.*?)\nJudgement: (.*?)(?:\n\n|$)", answer, re.DOTALL)
    if not m:
        return None
    verdict = m.group(2).lower().strip().strip('"').strip()
    return {"correct": 1.0, "incorrect": 0.0}.get(verdict)


def parse_result_yes_no(answer: str) -> float | None:
    """Speech-IFEval: the first ``Result: YES|NO`` (case-insensitive)."""
    m = re.search(r"(?i)(?<=result:\s)(yes|no)", answer)
    return None if not m else float(m.group(0).lower() == "yes")


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
        protocol = JudgeProtocol(**node["protocol"]) if node.get("protocol") else None
        out[name] = JudgePrompt(name, node.get("system", ""), node["user"], node["parser"], node.get("source", ""), protocol)
    return out


def get_prompt(name: str) -> JudgePrompt:
    """The template ``name``; an unknown name lists the known ones."""
    prompts = load_prompts()
    if name not in prompts:
        raise KeyError(f"unknown judge prompt '{name}'; known: {', '.join(sorted(prompts))} (see {PROMPTS_FILE})")
    return prompts[name]
