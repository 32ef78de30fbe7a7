"""Self-generation backends: who answers (seed description + instruction) with the backbone LLM."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from toolkit.models.generation import Generation
from toolkit.registry import Registry


class GenerationBackend(abc.ABC):
    """``generate(conversations)`` answers a batch of text-only chat conversations.

    A conversation is a list of ``{"role", "content"}`` dicts. Every backend returns one
    :class:`~toolkit.models.generation.Generation` (text, num_tokens, finish_reason) per
    conversation, in order, and exposes ``description()`` (what produced the answers) so the
    output records it.
    """

    @abc.abstractmethod
    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[Generation]:
        """One generation per conversation, in order."""

    @abc.abstractmethod
    def description(self) -> dict[str, Any]:
        """What produced the answers (recorded beside the output)."""

    def answer(self, items: Sequence[Any], conversations: Sequence[Sequence[dict[str, Any]]]) -> list[Generation]:
        """The runner's entry point: one answer per item. LLM backends read only the conversations; a
        backend that builds its answers from the clips' labels (``label_template``) reads the items."""
        return self.generate(conversations)


SELFGEN_BACKENDS = Registry("selfgen backend", base=GenerationBackend, variable="SELFGEN_BACKENDS",
                            components="toolkit.selfgen.backends")
