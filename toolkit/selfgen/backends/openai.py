"""The ``openai`` backend: any OpenAI-compatible chat server (vLLM serve, TGI, llama.cpp, hosted APIs).

Requests go through ``toolkit.models.chat_endpoint.ChatEndpoint`` (concurrent, in order, retried
with backoff); a request that still fails raises with the server's answer (the runner has written
every finished batch, so a rerun resumes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolkit.models.chat_endpoint import ChatEndpoint, ChatEndpointError
from toolkit.models.generation import Generation, GenerationSettings
from toolkit.selfgen.backends.base import SELFGEN_BACKENDS, GenerationBackend


def openai_fields(settings: GenerationSettings) -> dict[str, Any]:
    """Decoding settings as standard OpenAI request fields (hosted APIs refuse vLLM's extras)."""
    kwargs = settings.vllm_kwargs()
    fields = {k: kwargs[k] for k in ("max_tokens", "temperature", "seed")}
    if settings.do_sample:
        fields["top_p"] = kwargs["top_p"]
    return fields


@SELFGEN_BACKENDS.register("openai")
class OpenAIBackend(GenerationBackend):
    """Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name the server expects.
        api_key_env: environment variable holding the key (never put keys in YAML).
        generation: decoding settings (see GenerationSettings).
        concurrency: requests in flight at once.
        max_retries: retries per request after the first try.
        timeout: seconds per request.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", generation: dict[str, Any] | None = None,
                 concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0):
        self.settings = GenerationSettings(**(generation or {}))
        self.endpoint = ChatEndpoint(base_url, model, api_key_env=api_key_env, max_concurrency=concurrency,
                                     max_retries=max_retries, backoff_s=0.5, timeout_s=timeout)

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[Generation]:
        try:
            return self.endpoint.complete(conversations, openai_fields(self.settings))
        except ChatEndpointError as err:
            raise ChatEndpointError(f"selfgen.backend (openai): {err}") from err

    def description(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.endpoint.base_url, "model": self.endpoint.model,
                "generation": self.settings.to_dict()}
