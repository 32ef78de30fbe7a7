"""The chat-engine interface and registry."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from toolkit.models.generation import Generation, GenerationSettings
from toolkit.registry import Registry

Conversation = Sequence[dict[str, Any]]


class ChatEngine(abc.ABC):
    """Answers batches of text-only chat conversations (lists of ``{"role", "content"}`` dicts).

    An engine is built with its own decoding settings (``generation:``, :attr:`settings`); a caller may pass
    other settings per call (a judge sampling as a benchmark's protocol says). Answers come back in order,
    one :class:`Generation` (text, num_tokens, finish_reason) each, and :meth:`description` says what
    produced them, for the record kept beside every output.
    """

    settings: GenerationSettings

    @abc.abstractmethod
    def generate(self, conversations: Sequence[Conversation], settings: GenerationSettings | None = None
                 ) -> list[Generation]:
        """One answer per conversation, in order, with ``settings`` (None: the engine's own)."""

    def sample(self, conversations: Sequence[Conversation], settings: GenerationSettings, n: int
               ) -> list[list[Generation]]:
        """``n`` answers per conversation: here each conversation is asked ``n`` times in one batch (with
        sampling settings each copy draws its own tokens); an engine that can ask for ``n`` at once does so."""
        flat = self.generate([c for c in conversations for _ in range(n)], settings)
        return [flat[i * n:(i + 1) * n] for i in range(len(conversations))]

    def answer(self, items: Sequence[Any], conversations: Sequence[Conversation]) -> list[Generation]:
        """Self-generation's entry point: one answer per item. LLM engines read only the conversations; one that
        builds its answers from the clips' labels (``label_template``) reads the items."""
        return self.generate(conversations)

    @abc.abstractmethod
    def description(self) -> dict[str, Any]:
        """What produced the answers (recorded beside the output)."""


CHAT_ENGINES = Registry("chat engine", base=ChatEngine, variable="CHAT_ENGINES",
                        components="toolkit.models.chat_engines")
