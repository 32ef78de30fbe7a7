"""``openai`` judge: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM's server, ...).

The requests go through the ``openai`` chat engine (toolkit/models/chat_engines/openai.py), the one
self-generation uses: at most ``max_concurrency`` in flight, answers in order, transient errors retried
with backoff, other HTTP errors fail at once with the server's message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.models.chat_endpoint import ChatEndpointError
from toolkit.models.chat_engines import CHAT_ENGINES
from toolkit.score.judges.base import JUDGES, Conversation, Judge, JudgeError, JudgeProtocol


@JUDGES.register("openai")
class OpenAIJudge(Judge):
    """Args:
        model: model name sent to the endpoint (``gpt-4o-mini``, ``gpt-4o-2024-11-20`` ...).
        base_url: API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        api_key_env: environment variable holding the key (unset or empty: no Authorization header).
        max_concurrency: requests in flight at once.
        max_retries: retries per request after the first try.
        backoff_s: first retry delay; doubles each retry.
        timeout_s: per-request timeout.
        temperature: sampling temperature of :meth:`generate` (0: greedy); ``None``: not sent.  A benchmark
            that asks with its official protocol (:meth:`sample`, :meth:`ask`) sends that protocol's fields
            instead of these three.
        top_p: nucleus sampling parameter sent with the request (``None``: not sent).
        max_tokens: answer length limit.
    """

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1", api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 4, max_retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0,
                 temperature: float | None = 0.0, top_p: float | None = None, max_tokens: int = 512):
        try:
            self.engine = CHAT_ENGINES.build({"name": "openai", "base_url": base_url, "model": model,
                                              "api_key_env": api_key_env, "concurrency": max_concurrency,
                                              "max_retries": max_retries, "backoff_s": backoff_s,
                                              "timeout": timeout_s}, "score.judge")
        except ValueError as err:
            raise JudgeError(f"score.judge: {err}") from err
        self.fields: dict[str, Any] = {"max_tokens": max_tokens}
        if temperature is not None:
            self.fields["temperature"] = temperature
        if top_p is not None:
            self.fields["top_p"] = top_p

    applies_request = True

    @property
    def name(self) -> str:
        return f"openai:{self.engine.endpoint.model}@{self.engine.endpoint.base_url}"

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        return self._complete(conversations, self.fields)

    def sample(self, conversations: Sequence[Conversation], protocol: JudgeProtocol) -> list[list[str]]:
        """``protocol.samples`` answers per conversation with exactly the protocol's request fields (``{}``: only
        model and messages), not this judge's own settings.  Several samples are that many requests each (the
        official VoiceBench call asks for them as ``n=3`` in one request; the answers are drawn the same way)."""
        n = protocol.samples
        texts = self._complete([c for c in conversations for _ in range(n)], protocol.request)
        return [texts[i * n:(i + 1) * n] for i in range(len(conversations))]

    def _complete(self, conversations: Sequence[Conversation], fields: Mapping[str, Any]) -> list[str]:
        try:
            return [g.text for g in self.engine.complete(conversations, fields)]
        except ChatEndpointError as err:
            raise JudgeError(f"score.judge (openai): {err}") from err
