"""An OpenAI-compatible ``/chat/completions`` endpoint used as a text LLM (OpenAI, vLLM's server, TGI, llama.cpp).

The one client behind the ``openai`` self-generation backend and the ``openai`` judge. Plain
``requests`` (no SDK); a thread pool keeps at most ``max_concurrency`` requests in flight and the
answers come back in order. Connection errors, timeouts, HTTP 429 and 5xx are retried with
exponential backoff (``backoff_s`` doubling, or the server's ``Retry-After`` if longer; at most a
minute); any other
HTTP error fails at once with the server's message, since resending will not fix it. The API key
is read from the environment variable named by ``api_key_env``, never from a config file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from toolkit.models.generation import Generation

MAX_DELAY_S = 60.0  # longest wait between tries, whatever the backoff or Retry-After says


class ChatEndpointError(RuntimeError):
    """The endpoint refused a request, or stayed unreachable through every retry."""


class ChatEndpoint:
    """Args:
        base_url: API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        model: model name sent with every request.
        api_key_env: environment variable holding the key (unset or empty: no Authorization header).
        max_concurrency: requests in flight at once.
        max_retries: retries per request after the first try.
        backoff_s: first retry delay; doubles each retry.
        timeout_s: per-request timeout.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", max_concurrency: int = 4,
                 max_retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0):
        import requests  # noqa: F401  (fail at build time, not on the first request)

        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.max_concurrency, self.max_retries = max_concurrency, max_retries
        self.backoff_s, self.timeout_s = backoff_s, timeout_s

    def complete(self, conversations: Sequence[Sequence[Mapping[str, Any]]], fields: Mapping[str, Any]) -> list[Generation]:
        """One answer per conversation, in order; ``fields`` (``max_tokens``, ``temperature``, ...) go in every body."""
        if not conversations:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(conversations))) as pool:
            return list(pool.map(lambda c: self._one(c, fields), conversations))

    def _one(self, conversation: Sequence[Mapping[str, Any]], fields: Mapping[str, Any]) -> Generation:
        import requests

        body = {"model": self.model, "messages": [dict(m) for m in conversation], **fields}
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            delay = self.backoff_s * (2 ** attempt)
            try:
                resp = requests.post(self.url, json=body, headers=headers, timeout=self.timeout_s)
            except requests.RequestException as err:  # connection, timeout, a reply cut short
                last = f"{type(err).__name__}: {err}"
            else:
                if resp.status_code == 200:
                    return self._answer(resp)
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code != 429 and resp.status_code < 500:
                    raise ChatEndpointError(f"{self.url}: {last}. Check the model name ('{self.model}'), the base_url and the key "
                                            f"in ${self.api_key_env or '(no api_key_env)'}")
                try:
                    delay = max(delay, float(resp.headers.get("Retry-After", 0)))
                except ValueError:
                    pass
            if attempt < self.max_retries:
                time.sleep(min(delay, MAX_DELAY_S))
        raise ChatEndpointError(f"{self.url}: gave up after {self.max_retries + 1} tries; last error: {last}")

    def _answer(self, resp: Any) -> Generation:
        try:
            reply = resp.json()
            choice = reply["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise ChatEndpointError(f"{self.url}: unexpected response {resp.text[:300]!r} ({err})") from err
        tokens = int((reply.get("usage") or {}).get("completion_tokens") or 0)
        return Generation(text=text.strip(), num_tokens=tokens,
                          finish_reason="length" if choice.get("finish_reason") == "length" else "stop")
