"""The judge interface and registry.

A judge turns chat conversations (``[{"role": "system"|"user", "content": str}, ...]``) into
answers, greedily.  ``name`` identifies it in every score row it produced (``hf:<dir>``,
``openai:<model>@<url>``), so a judged number never travels without its judge.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
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


JUDGES = Registry("judge", base=Judge)


def build_judge(node: Mapping[str, Any] | None) -> Judge | None:
    """Build the judge of a ``score.judge:`` node (``None`` or ``{name: null}``: no judge)."""
    if not node or node.get("name") in (None, "", "none"):
        return None
    import_submodules("toolkit.score.judges")
    return JUDGES.build(node, where="score.judge")
