"""The ``openai`` chat engine: any OpenAI-compatible chat server (vLLM serve, TGI, llama.cpp, hosted APIs).

Requests go through ``toolkit.models.chat_endpoint.ChatEndpoint`` (concurrent, in order, retried with
backoff); a request that still fails raises with the server's answer (self-generation has written every
finished batch by then, so a rerun resumes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.models.chat_endpoint import ChatEndpoint, ChatEndpointError
from toolkit.models.chat_engines.base import CHAT_ENGINES, ChatEngine, Conversation
from toolkit.models.generation import Generation, GenerationSettings


def openai_fields(settings: GenerationSettings) -> dict[str, Any]:
    """Decoding settings as standard OpenAI request fields (hosted APIs refuse vLLM's extras)."""
    kwargs = settings.vllm_kwargs()
    fields = {k: kwargs[k] for k in ("max_tokens", "temperature", "seed")}
    if settings.do_sample:
        fields["top_p"] = kwargs["top_p"]
    return fields


@CHAT_ENGINES.register("openai")
class OpenAIChatEngine(ChatEngine):
    """Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name the server expects.
        api_key_env: environment variable holding the key (never put keys in YAML; unset or empty: no key sent).
        generation: decoding settings (see GenerationSettings).
        concurrency: requests in flight at once.
        max_retries: retries per request after the first try.
        timeout: seconds per request.
        backoff_s: first retry delay; doubles each retry.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", generation: dict[str, Any] | None = None,
                 concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0, backoff_s: float = 0.5):
        self.settings = GenerationSettings(**(generation or {}))
        self.endpoint = ChatEndpoint(base_url, model, api_key_env=api_key_env, max_concurrency=concurrency,
                                     max_retries=max_retries, backoff_s=backoff_s, timeout_s=timeout)

    def generate(self, conversations: Sequence[Conversation], settings: GenerationSettings | None = None
                 ) -> list[Generation]:
        return self.complete(conversations, openai_fields(settings or self.settings))

    def complete(self, conversations: Sequence[Conversation], fields: Mapping[str, Any]) -> list[Generation]:
        """One answer per conversation with exactly these request fields (``{}``: only model and messages)."""
        try:
            return self.endpoint.complete(conversations, dict(fields))
        except ChatEndpointError as err:
            raise ChatEndpointError(f"chat engine openai ({self.endpoint.model}): {err}") from err

    def description(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.endpoint.base_url, "model": self.endpoint.model,
                "generation": self.settings.to_dict()}
