"""The OpenAI chat-completions wire format <-> our conversations.

A request's messages become the conversation format ``LALM.generate`` takes::

    {"role": "user", "content": "<|AUDIO|>\\nWhat is said?", "audios": [{"audio": waveform, "text": None}]}

Audio comes as OpenAI ``input_audio`` content parts. A message whose text has no ``<|AUDIO|>``
gets one per audio prepended (the training format, ``<|AUDIO|>\\n<prompt>``); a message with
placeholders must have exactly one per audio part. As an extension, an ``input_audio`` object may
carry ``"transcript"``: that text is spliced instead of running ASR.

Every problem is a ``RequestError`` carrying the HTTP status and the offending field, returned to
the client in OpenAI's error shape so the official client raises it with our message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from toolkit.models.chat import AUDIO_TOKEN
from toolkit.serve.audio_input import AudioInputError, decode_input_audio

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP_STRINGS = 4


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx), a message naming the problem, the field."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    """A parsed request: the conversation, decoding overrides and how to answer."""

    model: str
    conversation: list[dict[str, Any]]
    generation: dict[str, Any] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False

    @property
    def num_audios(self) -> int:
        return sum(len(m.get("audios") or []) for m in self.conversation)


def _bad(message: str, param: str | None = None, code: str | None = None) -> RequestError:
    return RequestError(400, message, param, code)


def _parse_content(content: Any, where: str, max_audio_seconds: float | None) -> tuple[str, list[dict[str, Any]]]:
    """Text and audios of one message's ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _bad(f"{where}: expected a string or a list of content parts, got {type(content).__name__}", where)
    texts, audios = [], []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _bad(f"{here}.text: expected a string", here)
            texts.append(part["text"])
        elif kind == "input_audio":
            try:
                wave = decode_input_audio(part.get("input_audio"), max_audio_seconds, f"{here}.input_audio")
            except AudioInputError as err:
                raise _bad(str(err), f"{here}.input_audio", "invalid_audio") from err
            transcript = (part.get("input_audio") or {}).get("transcript")
            if transcript is not None and not isinstance(transcript, str):
                raise _bad(f"{here}.input_audio.transcript: expected a string", here)
            audios.append({"audio": wave, "text": transcript})
        else:
            raise _bad(f"{here}: content part type '{kind}' is not supported; this model takes 'text' and 'input_audio' parts", here)
    return "\n".join(texts), audios


def _place_audio_tags(text: str, n_audios: int, where: str) -> str:
    n_tags = text.count(AUDIO_TOKEN)
    if n_tags == 0 and n_audios:
        return AUDIO_TOKEN * n_audios + ("\n" + text if text else "")
    if n_tags != n_audios:
        raise _bad(f"{where}: the text has {n_tags} {AUDIO_TOKEN} placeholder(s) but the message has {n_audios} input_audio part(s); "
                   f"put one {AUDIO_TOKEN} where each audio goes, or none to put them all first", where, "audio_count_mismatch")
    return text


def _generation_overrides(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Decoding overrides (OpenAI names -> ``GenerationSettings`` names) and stop strings."""
    gen: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _bad(f"max_tokens: expected a positive integer, got {max_tokens!r}", "max_tokens")
        gen["max_new_tokens"] = max_tokens
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise _bad(f"temperature: expected a number >= 0, got {temperature!r}", "temperature")
        gen["do_sample"] = temperature > 0
        if temperature > 0:
            gen["temperature"] = float(temperature)
    if body.get("top_p") is not None:
        top_p = body["top_p"]
        if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise _bad(f"top_p: expected a number in (0, 1], got {top_p!r}", "top_p")
        gen["top_p"] = float(top_p)
    if body.get("seed") is not None:
        if not isinstance(body["seed"], int):
            raise _bad(f"seed: expected an integer, got {body['seed']!r}", "seed")
        gen["seed"] = body["seed"]
    if body.get("n", 1) != 1:
        raise _bad(f"n: only n=1 is supported, got {body.get('n')!r}; send several requests instead", "n")
    stop = body.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOP_STRINGS:
        raise _bad(f"stop: expected a non-empty string or a list of up to {MAX_STOP_STRINGS}, got {stop!r}", "stop")
    return gen, stops


def body_too_large(size: int, limit: int) -> RequestError:
    """The 400 both backends answer for a body over ``--max-request-mb`` (named with the limit)."""
    return _bad(f"the request body is {size / 2**20:.1f} MiB, over this server's limit of {limit / 2**20:g} MiB "
                f"(--max-request-mb); send fewer or shorter audios, or compress them (flac, ogg)", None,
                "request_too_large")


def _count_audio_parts(messages: list[Any]) -> int:
    return sum(1 for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list)
               for part in m["content"] if isinstance(part, dict) and part.get("type") == "input_audio")


def parse_chat_request(body: Any, model_names: Sequence[str], max_audio_seconds: float | None,
                       max_audios: int | None = None) -> ChatRequest:
    """Check a ``/v1/chat/completions`` body and turn it into a ``ChatRequest`` (audio decoded).

    ``max_audios``: most ``input_audio`` parts in one request (``--max-audios-per-request``), counted
    before any is decoded.
    """
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model: missing; GET /v1/models lists the served model", "model")
    if model not in model_names:
        raise RequestError(404, f"model '{model}' is not served here; this server serves {', '.join(repr(m) for m in model_names)}", "model", "model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: expected a non-empty list of messages", "messages")
    n_audios = _count_audio_parts(messages)
    if max_audios is not None and n_audios > max_audios:
        raise _bad(f"messages: {n_audios} input_audio parts in one request, over this server's limit of {max_audios} "
                   f"(--max-audios-per-request); split the request", "messages", "too_many_audios")
    conversation = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(f"{where}: expected an object with 'role' and 'content'", where)
        role = ROLES.get(m.get("role"))
        if role is None:
            raise _bad(f"{where}.role: '{m.get('role')}' is not supported; use one of {', '.join(ROLES)}", f"{where}.role")
        if m.get("content") is None:
            raise _bad(f"{where}.content: missing (tool calls are not supported)", f"{where}.content")
        text, audios = _parse_content(m["content"], f"{where}.content", max_audio_seconds)
        if audios and role != "user":
            raise _bad(f"{where}: audio is only accepted in user messages, not '{m['role']}'", where)
        text = _place_audio_tags(text, len(audios), f"{where}.content")
        conversation.append({"role": role, "content": text, **({"audios": audios} if audios else {})})
    if conversation[-1]["role"] != "user":
        raise _bad("messages: the last message must be from the user (the model answers it)", "messages")
    generation, stops = _generation_overrides(body)
    stream_options = body.get("stream_options") or {}
    return ChatRequest(model=model, conversation=conversation, generation=generation, stop=stops,
                       stream=bool(body.get("stream", False)), include_usage=bool(stream_options.get("include_usage", False)))


def apply_stop(text: str, finish_reason: str, stops: Sequence[str]) -> tuple[str, str]:
    """Cut the answer at the first stop string (OpenAI leaves the stop string out)."""
    cuts = [text.find(s) for s in stops if s in text]
    if not cuts:
        return text, finish_reason
    return text[: min(cuts)], "stop"


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def completion_body(request_id: str, model: str, result: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` object; the message carries the transcripts the model was given."""
    return {
        "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": result["finish_reason"], "logprobs": None,
                     "message": {"role": "assistant", "content": result["text"], "transcripts": result["transcripts"]}}],
        "usage": usage(result["prompt_tokens"], result["num_tokens"]),
    }


def chunk_body(request_id: str, model: str, created: int, delta: dict[str, Any], finish_reason: str | None = None,
               with_choice: bool = True) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of an SSE stream."""
    choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}] if with_choice else []
    return {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices}
