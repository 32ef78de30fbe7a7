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


SELFGEN_BACKENDS = Registry("selfgen backend", base=GenerationBackend)
