"""The OpenAI-compatible FastAPI application over a backend and a batcher.

Routes:
    GET  /health                 liveness
    GET  /v1/models              the served model id
    GET  /v1/models/{id}         one model, 404 for others
    POST /v1/chat/completions    answer (JSON or SSE with ``stream: true``)
    GET  /stats                  batching statistics (requests, batches, batch-size histogram)

Streaming: the answer is generated whole (in its batch) and then sent as SSE chunks, one word per
chunk. That keeps batching simple and lets every error be a proper HTTP status before the stream
starts; true token streaming would need a streamer hook in ``generate_from_embeddings``.
The first chunk's delta carries ``transcripts`` (an extension field, as on the full message).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from toolkit.serve.batching import Batcher
from toolkit.serve.protocol import (RequestError, apply_stop, body_too_large, chunk_body, completion_body, new_id,
                                    parse_chat_request, usage)

log = logging.getLogger("toolkit.serve")


def _check_settings(backend: Any, overrides: dict[str, Any]) -> None:
    from toolkit.models.generation import GenerationSettings

    try:
        GenerationSettings(**{**backend.default_generation, **overrides})
    except (TypeError, ValueError) as err:
        raise RequestError(400, f"decoding settings rejected: {err}") from err


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _stream(request_id: str, model: str, result: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    created = int(time.time())
    yield _sse(chunk_body(request_id, model, created, {"role": "assistant", "content": "", "transcripts": result["transcripts"]}))
    for piece in re.findall(r"\s*\S+", result["text"]):
        yield _sse(chunk_body(request_id, model, created, {"content": piece}))
    yield _sse(chunk_body(request_id, model, created, {}, result["finish_reason"]))
    if include_usage:
        yield _sse({**chunk_body(request_id, model, created, {}, with_choice=False), "usage": usage(result["prompt_tokens"], result["num_tokens"])})
    yield "data: [DONE]\n\n"


async def read_body(request: Request, limit: int | None) -> bytes:
    """The request body, refused (400) once it passes ``limit`` bytes without keeping more than ``limit`` in memory.

    The rest of an over-long body is read and dropped before answering (a client still sending when the
    server answers gets a connection reset instead of the 400 and its message).
    """
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit is None or size <= limit:
            chunks.append(chunk)
        elif chunks:
            chunks = []  # over the limit: count the rest, keep nothing
    if limit is not None and size > limit:
        raise body_too_large(size, limit)
    return b"".join(chunks)


def create_app(backend: Any, max_batch_size: int = 8, batch_wait_ms: float = 20.0,
               max_audio_seconds: float | None = 300.0, max_audios: int | None = 4,
               max_request_bytes: int | None = 64 * 2**20) -> FastAPI:
    """The server application; the batcher starts and stops with it (FastAPI lifespan).

    Limits (each answered with a 400 that names it): ``max_audio_seconds`` per clip (the CLI clamps it to what
    the encoder takes), ``max_audios`` per request, ``max_request_bytes`` of body; None: no limit.
    """
    batcher = Batcher(backend.generate, max_batch_size=max_batch_size, wait_ms=batch_wait_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        log.info("serving '%s' (max batch %d, wait %g ms, audio limit %s s, %s audios and %s bytes per request)",
                 backend.name, max_batch_size, batch_wait_ms, max_audio_seconds, max_audios, max_request_bytes)
        yield
        await batcher.stop()

    app = FastAPI(title="desta-toolkit LALM server", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError) -> JSONResponse:
        log.info("refused %s: %s", request.url.path, err.message)
        return JSONResponse(err.body(), status_code=err.status)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    def model_card() -> dict[str, Any]:
        return {"id": backend.name, "object": "model", "created": 0, "owned_by": "desta-toolkit"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != backend.name:
            raise RequestError(404, f"model '{model_id}' is not served here; this server serves '{backend.name}'", "model", "model_not_found")
        return model_card()

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return batcher.stats()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        raw = await read_body(request, max_request_bytes)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(400, f"the request body is not valid JSON ({err})") from err
        # Decoding audio is blocking work: keep it off the event loop.
        req = await asyncio.to_thread(parse_chat_request, body, [backend.name], max_audio_seconds, max_audios)
        _check_settings(backend, req.generation)
        problem = backend.missing_transcript_problem(req.conversation)
        if problem:
            raise RequestError(400, problem, "messages", "missing_transcript")
        request_id = new_id()
        try:
            result = await batcher.submit(req.conversation, req.generation)
        except Exception as err:
            log.exception("generation failed for %s", request_id)
            raise RequestError(500, f"generation failed: {type(err).__name__}: {err}") from err
        text, finish = apply_stop(result["text"], result["finish_reason"], req.stop)
        result = {**result, "text": text, "finish_reason": finish}
        if req.stream:
            return StreamingResponse(_stream(request_id, req.model, result, req.include_usage), media_type="text/event-stream")
        return completion_body(request_id, req.model, result)

    return app
