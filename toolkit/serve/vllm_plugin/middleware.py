"""Our request handling in front of vLLM's own OpenAI server (``vllm serve --middleware ...``).

vLLM's server already speaks the chat-completions protocol, batches requests continuously and
streams tokens. This ASGI middleware adds what our ``hf`` server does and vLLM cannot know, so
both backends answer the same request the same way:

- the request is checked by the hf server's parser (``toolkit.serve.protocol``): the same 4xx
  messages for a non-audio upload, a truncated or over-long clip, a ``<|AUDIO|>`` count that
  differs from the audios, an unknown model;
- transcripts are made here by the export's transcriber (an ``input_audio.transcript`` wins) and
  handed to the plugin's processor as ``mm_processor_kwargs.transcripts``;
- each audio goes on to vLLM as the 16 kHz float WAV our reader decoded, so vLLM encodes the
  samples ``LALM.generate`` would (no second decoder, no second resampler);
- the export's ``generation:`` settings fill the decoding fields a request leaves out;
- the answer's message, or the first stream chunk's delta, gets ``transcripts``, as on the hf server.

vLLM adds its own middleware (API keys, CORS) before ours, which makes ours the outermost: a request
without a valid key (``--api-key``) is handed straight to vLLM, which answers 401 before any audio is
decoded. Other routes pass through, except that no client may set ``mm_processor_kwargs`` (the server
trusts request kwargs only because this middleware writes them). vLLM builds the middleware with the
app alone, so the settings come from the environment ``python -m toolkit.bin.serve --backend vllm``
sets (``DESTA_EXPORT_DIR``, ``DESTA_SERVED_MODEL_NAME``, ``DESTA_MAX_AUDIO_SECONDS``,
``DESTA_MAX_AUDIOS_PER_REQUEST``, ``DESTA_MAX_REQUEST_BYTES``, ``DESTA_TRANSCRIBER_DEVICE``, ``DESTA_API_KEYS``).
A body over the byte limit is refused (400) while it is read, for every POST route. Nothing here imports vLLM.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.audio import SAMPLE_RATE
from toolkit.serve.backend import missing_transcript_problem
from toolkit.serve.protocol import RequestError, body_too_large, parse_chat_request

log = logging.getLogger("toolkit.serve")

ENV_EXPORT_DIR = "DESTA_EXPORT_DIR"
ENV_SERVED_MODEL_NAME = "DESTA_SERVED_MODEL_NAME"
ENV_MAX_AUDIO_SECONDS = "DESTA_MAX_AUDIO_SECONDS"
DEFAULT_MAX_AUDIO_SECONDS = 300.0
ENV_TRANSCRIBER_DEVICE = "DESTA_TRANSCRIBER_DEVICE"
ENV_API_KEYS = "DESTA_API_KEYS"  # newline-separated, as vLLM's --api-key takes several
ENV_MAX_AUDIOS = "DESTA_MAX_AUDIOS_PER_REQUEST"
ENV_MAX_REQUEST_BYTES = "DESTA_MAX_REQUEST_BYTES"
CHAT_PATH = "/v1/chat/completions"

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def wav_base64(wave: np.ndarray) -> str:
    """A 16 kHz float32 WAV of ``wave``, base64: lossless, and vLLM needs no resampling."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(wave, dtype=np.float32), SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class DestaChatMiddleware:
    """ASGI middleware: our parsing, transcripts and defaults around vLLM's ``/v1/chat/completions``.

    Args:
        app: the ASGI app it wraps (vLLM's server).
        export_dir: the export being served (default: ``$DESTA_EXPORT_DIR``).
        served_model_names: accepted model ids (default: ``$DESTA_SERVED_MODEL_NAME``, comma-separated;
            unset leaves the check to vLLM).
        max_audio_seconds: longest accepted clip (default: ``$DESTA_MAX_AUDIO_SECONDS`` or 300; 0 = no limit).
        max_audios: most audios in one request (default: ``$DESTA_MAX_AUDIOS_PER_REQUEST`` or 4; 0 = no limit).
        max_request_bytes: largest request body (default: ``$DESTA_MAX_REQUEST_BYTES`` or 64 MiB; 0 = no limit).
        transcriber_device: where the ASR model runs (default: ``$DESTA_TRANSCRIBER_DEVICE`` or cpu).
        api_keys: the keys vLLM accepts (default: ``$DESTA_API_KEYS``); requests without one go to vLLM untouched.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], export_dir: str | Path | None = None,
                 served_model_names: Sequence[str] | None = None, max_audio_seconds: float | None = None,
                 transcriber_device: str | None = None, api_keys: Sequence[str] | None = None,
                 max_audios: int | None = None, max_request_bytes: int | None = None):
        from toolkit.config import load_config, to_container
        from toolkit.models.generation import GenerationSettings

        self.app = app
        export_dir = export_dir or os.environ.get(ENV_EXPORT_DIR)
        if not export_dir:
            raise RuntimeError(f"{type(self).__name__}: no export to serve; set {ENV_EXPORT_DIR}=EXPORT_DIR, or start the server "
                               f"with python -m toolkit.bin.serve --backend vllm --model EXPORT_DIR")
        self.export_dir = Path(export_dir)
        if not (self.export_dir / "config.yaml").is_file():
            raise RuntimeError(f"{ENV_EXPORT_DIR}={self.export_dir}: not an exported model (no config.yaml); run the export stage")
        self.config = to_container(load_config(self.export_dir / "config.yaml"))
        if served_model_names is None and os.environ.get(ENV_SERVED_MODEL_NAME):
            served_model_names = [n for n in os.environ[ENV_SERVED_MODEL_NAME].split(",") if n]
        self.served_model_names = list(served_model_names) if served_model_names else None
        if max_audio_seconds is None:
            max_audio_seconds = float(os.environ.get(ENV_MAX_AUDIO_SECONDS, DEFAULT_MAX_AUDIO_SECONDS))
        self.max_audio_seconds = max_audio_seconds or None
        if max_audios is None:
            max_audios = int(os.environ.get(ENV_MAX_AUDIOS, 4))
        self.max_audios = max_audios or None
        if max_request_bytes is None:
            max_request_bytes = int(os.environ.get(ENV_MAX_REQUEST_BYTES, 64 * 2**20))
        self.max_request_bytes = max_request_bytes or None
        self.transcriber_device = transcriber_device or os.environ.get(ENV_TRANSCRIBER_DEVICE, "cpu")
        self.settings = GenerationSettings(**(self.config.get("generation") or {}))
        self.defaults = self.settings.vllm_kwargs()
        if api_keys is None:
            api_keys = [k for k in os.environ.get(ENV_API_KEYS, "").split("\n") if k]
        self.authorizations = {f"Bearer {k}".encode() for k in api_keys}
        self._transcriber: Any = None
        self._lock = threading.Lock()  # one ASR call at a time; requests arrive on several threads

    # -- the ASGI entry point -------------------------------------------------------------------

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not self.authorized(scope):
            await self.app(scope, receive, send)
            return
        path, root = scope.get("path", ""), scope.get("root_path") or ""
        if root and path.startswith(root):  # served under --root-path
            path = path[len(root):]
        try:
            body = await _read_body(receive, self.max_request_bytes)
        except RequestError as err:
            log.info("refused %s: %s", path, err.message)
            await _send_json(send, err.status, err.body())
            return
        if path.rstrip("/") != CHAT_PATH:
            if b"mm_processor_kwargs" in body and _has_key(body, "mm_processor_kwargs"):
                await _send_json(send, 400, RequestError(400, "mm_processor_kwargs are set by this server (transcripts come from "
                                                         "its ASR or input_audio.transcript on /v1/chat/completions)",
                                                         "mm_processor_kwargs").body())
                return
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            # Decoding audio and ASR are blocking work: keep them off the event loop.
            forwarded, transcripts = await asyncio.to_thread(self.rewrite, body)
        except RequestError as err:
            log.info("refused %s: %s", CHAT_PATH, err.message)
            await _send_json(send, err.status, err.body())
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(forwarded)).encode())]}
        await self.app(scope, _replay(forwarded, receive), TranscriptSender(send, transcripts))

    def authorized(self, scope: Message) -> bool:
        """Without API keys every request is; with them, vLLM answers the others (401) before we decode anything."""
        if not self.authorizations:
            return True
        return dict(scope.get("headers") or []).get(b"authorization", b"") in self.authorizations

    # -- the request ----------------------------------------------------------------------------

    @property
    def transcriber(self) -> Any:
        """The export's transcriber, built on first use (loading Whisper takes seconds)."""
        with self._lock:
            if self._transcriber is None:
                from toolkit.models.transcribers import TRANSCRIBERS

                self._transcriber = TRANSCRIBERS.build(self.config["transcriber"], "transcriber")
                if hasattr(self._transcriber, "to"):
                    self._transcriber.to(self.transcriber_device)
            return self._transcriber

    def rewrite(self, body: bytes) -> tuple[bytes, list[str | None]]:
        """The body vLLM gets (audio re-encoded, transcripts, defaults) and the transcripts used."""
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(400, f"the request body is not valid JSON ({err})") from err
        names = self.served_model_names
        if names is None and isinstance(data, dict) and isinstance(data.get("model"), str):
            names = [data["model"]]  # vLLM answers an unknown model itself
        request = parse_chat_request(data, names or [], self.max_audio_seconds, self.max_audios)
        conversation = request.conversation
        audios = [a for m in conversation for a in m.get("audios") or []]
        given = [a["text"] for a in audios]
        transcripts: list[str | None] = list(given)
        if audios and any(t is None for t in given):
            transcriber = self.transcriber
            problem = missing_transcript_problem(transcriber, conversation)
            if problem:
                raise RequestError(400, problem, "messages", "missing_transcript")
            with self._lock:
                transcripts = list(transcriber.transcribe([a["audio"] for a in audios], given))

        messages = []
        for m in conversation:
            if not m.get("audios"):
                messages.append({"role": m["role"], "content": m["content"]})
                continue
            parts = [{"type": "text", "text": m["content"]}]
            parts += [{"type": "input_audio", "input_audio": {"data": wav_base64(a["audio"]), "format": "wav"}} for a in m["audios"]]
            messages.append({"role": m["role"], "content": parts})
        # A client's own mm_processor_kwargs are dropped: the server trusts request kwargs
        # (--trust-request-mm-kwargs) only because this middleware writes them.
        forwarded = {k: v for k, v in data.items() if k not in ("messages", "mm_processor_kwargs")}
        forwarded["messages"] = messages
        if transcripts:
            forwarded["mm_processor_kwargs"] = {"transcripts": transcripts}
        self.fill_defaults(forwarded)
        return json.dumps(forwarded).encode(), transcripts

    def fill_defaults(self, body: dict[str, Any]) -> None:
        """The export's decoding settings for every field the request leaves out (as the hf server does)."""
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            body["max_tokens"] = self.defaults["max_tokens"]
        if body.get("temperature") is None:
            body["temperature"] = self.defaults["temperature"]
        # The export's own top_p/top_k even when it decodes greedily: a request that samples gets what the
        # hf server would use, not the LLM's generation_config (e.g. Llama-3.1's top_p 0.9).
        if body.get("top_p") is None:
            body["top_p"] = self.settings.top_p
        if body.get("top_k") is None:
            body["top_k"] = self.settings.top_k or -1
        for key in ("repetition_penalty", "seed"):
            if body.get(key) is None:
                body[key] = self.defaults[key]


# -- the response -------------------------------------------------------------------------------


class TranscriptSender:
    """Wraps ``send``: adds ``transcripts`` to a 200 answer's message, or to the first stream delta."""

    def __init__(self, send: Send, transcripts: list[str | None]):
        self.send, self.transcripts = send, transcripts
        self.mode = "pass"  # pass | json | stream
        self.start: Message | None = None
        self.body = bytearray()
        self.pending = b""
        self.added = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers") or []).get(b"content-type", b"").decode("latin-1")
            if message["status"] == 200 and content_type.startswith("text/event-stream"):
                self.mode = "stream"
            elif message["status"] == 200 and content_type.startswith("application/json"):
                self.mode, self.start = "json", message  # sent with the body: its length changes
                return
            await self.send(message)
        elif message["type"] == "http.response.body" and self.mode == "json":
            self.body += message.get("body", b"")
            if message.get("more_body"):
                return
            body = self.add_to_answer(bytes(self.body))
            assert self.start is not None
            headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"]
            await self.send({**self.start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await self.send({"type": "http.response.body", "body": body, "more_body": False})
        elif message["type"] == "http.response.body" and self.mode == "stream":
            # Split on bytes: a piece may end inside a multi-byte character, an event never does.
            self.pending += message.get("body", b"")
            more = bool(message.get("more_body"))
            *events, self.pending = self.pending.split(b"\n\n")
            if not more and self.pending:
                events, self.pending = [*events, self.pending], b""
            out = b"".join(self.add_to_event(e.decode("utf-8")).encode("utf-8") + b"\n\n" for e in events)
            if out or not more:
                await self.send({"type": "http.response.body", "body": out, "more_body": more})
        else:
            await self.send(message)

    def add_to_answer(self, body: bytes) -> bytes:
        try:
            answer = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return body
        for choice in answer.get("choices") or []:
            if isinstance(choice.get("message"), dict):
                choice["message"]["transcripts"] = self.transcripts
        return json.dumps(answer, ensure_ascii=False).encode("utf-8")

    def add_to_event(self, event: str) -> str:
        if self.added or not event.startswith("data: ") or event.strip() == "data: [DONE]":
            return event
        try:
            chunk = json.loads(event[len("data: "):])
        except json.JSONDecodeError:
            return event
        deltas = [c.get("delta") for c in chunk.get("choices") or [] if isinstance(c.get("delta"), dict)]
        if not deltas or "role" not in deltas[0]:
            return event
        deltas[0]["transcripts"] = self.transcripts
        self.added = True
        return "data: " + json.dumps(chunk, ensure_ascii=False)


# -- ASGI plumbing ------------------------------------------------------------------------------


async def _read_body(receive: Receive, limit: int | None = None) -> bytes:
    """The request body; over ``limit`` bytes a 400 is raised once it has been read (the excess is dropped,
    never kept: memory stays under ``limit``; reading it all lets the client receive the answer)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is None or size <= limit:
            chunks.append(chunk)
        elif chunks:
            chunks = []
        if not message.get("more_body"):
            break
    if limit is not None and size > limit:
        raise body_too_large(size, limit)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` once, then the client's own messages (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _has_key(body: bytes, key: str) -> bool:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get(key) is not None


async def _send_json(send: Send, status: int, obj: Any) -> None:
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
