"""The judge interface and registry.

A judge turns chat conversations (``[{"role": "system"|"user", "content": str}, ...]``) into
answers: greedily (:meth:`Judge.generate`), or several sampled answers each (:meth:`Judge.sample`)
where a benchmark's protocol asks for that (:class:`JudgeProtocol`; VoiceBench takes 3 samples at
temperature 0.5, top_p 0.95).  ``name`` identifies it in every score row it produced (``hf:<dir>``,
``openai:<model>@<url>``), so a judged number never travels without its judge.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from toolkit.registry import Registry, import_submodules

Conversation = list[dict[str, str]]


class JudgeError(RuntimeError):
    """A judge that cannot be built or that failed to answer."""


class Judge(abc.ABC):
    """Base class of the judges."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Identifies the judge in every score row it produced."""

    @abc.abstractmethod
    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        """One answer per conversation, in order."""

    def sample(self, conversations: Sequence[Conversation], protocol: "JudgeProtocol") -> list[list[str]]:
        """``protocol.samples`` sampled answers per conversation (temperature and top_p from ``protocol``).

        The hf, vllm and openai judges implement it; a judge that cannot sample says so here.
        """
        raise JudgeError(f"judge {self.name} cannot sample answers, and this benchmark's judge protocol "
                         f"({protocol.describe()}) needs {protocol.samples} samples per answer; use the hf, vllm or openai judge")


@dataclass(frozen=True)
class JudgeProtocol:
    """How a benchmark asks its judge: how many answers, sampled how, and how they are combined.

    Args:
        samples: answers per judged item (``n`` of the official request).
        temperature: sampling temperature of every answer.
        top_p: nucleus sampling parameter.
        max_tokens: answer length limit of the official request.
        aggregate: ``mean`` (of ratings) or ``majority`` (vote over yes/no answers).
        seed: seeds the sampling of local judges (hf, vllm); API judges sample on their side.
    """

    samples: int
    temperature: float
    top_p: float
    max_tokens: int
    aggregate: str
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1 or self.temperature <= 0:
            raise JudgeError(f"judge protocol: samples must be >= 1 and temperature > 0 to sample, got {self}")
        if self.aggregate not in ("mean", "majority"):
            raise JudgeError(f"judge protocol: aggregate must be 'mean' or 'majority', got {self.aggregate!r}")

    def describe(self) -> str:
        """One line for result rows and RESULTS.md: ``3 samples, temperature 0.5, top_p 0.95, majority``."""
        return (f"{self.samples} samples, temperature {self.temperature}, top_p {self.top_p}, "
                f"max_tokens {self.max_tokens}, {self.aggregate}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


JUDGES = Registry("judge", base=Judge)


def build_judge(node: Mapping[str, Any] | None) -> Judge | None:
    """Build the judge of a ``score.judge:`` node (``None`` or ``{name: null}``: no judge)."""
    if not node or node.get("name") in (None, "", "none"):
        return None
    import_submodules("toolkit.score.judges")
    return JUDGES.build(node, where="score.judge")
