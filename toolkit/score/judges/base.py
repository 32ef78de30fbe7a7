"""The judge interface and registry.

A judge turns chat conversations (``[{"role": "system"|"user", "content": str}, ...]``) into
answers, greedily (:meth:`Judge.generate`).  A benchmark whose official judge call sends particular
request fields (SAKURA: temperature 0 and top_p 0.9; Speech-IFEval: none at all, the API's defaults)
asks with :meth:`Judge.ask`: the ``openai`` judge then sends exactly those fields, the local judges
(``hf``, ``vllm``) answer greedily, and :func:`request_note` says which happened.  ``name`` identifies the
judge in every score row it produced (``hf:<dir>``, ``openai:<model>@<url>``), so a judged number never
travels without its judge.
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

    #: True when :meth:`ask` sends a request's fields as they are (an API judge); local judges answer greedily.
    applies_request: bool = False

    @abc.abstractmethod
    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        """One answer per conversation, in order."""

    def ask(self, conversations: Sequence[Conversation], request: Mapping[str, Any]) -> list[str]:
        """One answer per conversation, asked the way the benchmark's official judge call asks.

        ``request``: the sampling fields that call sends (``{}``: none, the API's defaults).  An API
        judge sends exactly those (``applies_request``); a local judge answers greedily, as here.
        """
        return self.generate(conversations)


def request_note(judge: Judge, request: Mapping[str, Any]) -> str:
    """One line for a results table: which request protocol actually reached the judge."""
    fields = ", ".join(f"{k}={v}" for k, v in request.items()) or "no sampling fields (API defaults)"
    if judge.applies_request:
        return f"{judge.name} sent the official request: {fields}"
    return f"{judge.name} decodes greedily (a local judge); the official request is {fields}"


JUDGES = Registry("judge", base=Judge)


def build_judge(node: Mapping[str, Any] | None) -> Judge | None:
    """Build the judge of a ``score.judge:`` node (``None`` or ``{name: null}``: no judge)."""
    if not node or node.get("name") in (None, "", "none"):
        return None
    import_submodules("toolkit.score.judges")
    return JUDGES.build(node, where="score.judge")
