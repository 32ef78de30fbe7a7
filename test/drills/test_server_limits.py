"""Fault drill: requests past what the model or the server can take get a 400 that names the limit.

- a 590 s clip under the old 600 s ``--max-audio-seconds`` default reached Whisper, which takes 10 windows
  of 30 s, and came back as HTTP 500; the limit is now clamped to the export's encoder (300 s);
- the hf server read any body and took any number of audios (200 were accepted); both backends now cap the
  body (``--max-request-mb``) and the audios per request (``--max-audios-per-request``).

The hf side runs the real CLI on a tiny export; the vLLM side runs our middleware in front of a stand-in
for vLLM's server (``test_serve_vllm_middleware.fake_vllm``), which must never see a refused request.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serve extra is needed: pip install -e .[serve]")

from toolkit.config import REPO_ROOT  # noqa: E402
from toolkit.serve.local import serve_in_thread, stop_process  # noqa: E402


def clip(seconds: float, rate: int = 8000) -> dict:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(rate * seconds), np.int16), rate, format="WAV", subtype="PCM_16")
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(buf.getvalue()).decode(), "format": "wav",
                                                   "transcript": "hi"}}


def ask(url: str, parts: list[dict], model: str, pad: int = 0) -> tuple[int, dict]:
    content = [{"type": "text", "text": "x"}, *parts]
    body = {"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": content}]}
    data = json.dumps(body).encode() + b" " * pad
    req = urllib.request.Request(url + "/v1/chat/completions", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def tiny_export(tiny_model_config, tmp_path_factory):
    from toolkit.models.lalm import LALM

    return LALM.from_config(tiny_model_config).save_pretrained(tmp_path_factory.mktemp("limits") / "tiny-export")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hf_server_clamps_the_clip_limit_to_the_encoder_and_caps_requests(tiny_export):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.bin.serve", "--model", str(tiny_export),
                             "--port", str(port),
                             "--max-audio-seconds", "600", "--max-request-mb", "20", "--max-audios-per-request", "4",
                             "--threads", "1"], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        status, reply = ask(url, [clip(590)], "tiny-export")
        assert status == 400, reply  # was 500: the encoder refused what the server had let through
        assert "590.0 s long, over this server's limit of 300 s" in reply["error"]["message"]
        status, reply = ask(url, [clip(0.5) for _ in range(5)], "tiny-export")
        assert status == 400
        assert "5 input_audio parts in one request, over this server's limit of 4" in reply["error"]["message"]
        status, reply = ask(url, [clip(1.0)], "tiny-export", pad=21 * 2**20)
        assert status == 400 and "over this server's limit of 20 MiB (--max-request-mb)" in reply["error"]["message"]
        status, reply = ask(url, [clip(1.0) for _ in range(4)], "tiny-export")
        assert status == 200, reply  # at the limits, still served
    finally:
        stop_process(proc)
    assert "more than the export's encoder (whisper) takes: clips are limited to 300 s" in proc.stdout.read()


def test_vllm_middleware_caps_body_and_audios_before_vllm_sees_them(tiny_export):
    from test_serve_vllm_middleware import fake_vllm

    from toolkit.serve.vllm_plugin.middleware import DestaChatMiddleware

    received: list[dict] = []
    app = DestaChatMiddleware(fake_vllm(received), export_dir=tiny_export, served_model_names=["tiny"],
                              max_audio_seconds=300, max_audios=2, max_request_bytes=2**20)
    with serve_in_thread(app) as url:
        status, reply = ask(url, [clip(0.5) for _ in range(3)], "tiny")
        assert status == 400
        assert "3 input_audio parts in one request, over this server's limit of 2" in reply["error"]["message"]
        status, reply = ask(url, [clip(0.5)], "tiny", pad=2 * 2**20)
        assert status == 400 and "over this server's limit of 1 MiB" in reply["error"]["message"]
        assert received == []  # vLLM never saw either
        status, _ = ask(url, [clip(0.5), clip(0.5)], "tiny")
        assert status == 200 and len(received) == 1


def test_the_encoder_limit_comes_from_the_config_alone():
    from toolkit.bin.serve import audio_seconds_limit, build_parser

    whisper = {"encoder": {"name": "whisper", "model_path": "unused", "max_chunks": 4}}

    def limit(*flags: str) -> float | None:
        return audio_seconds_limit(build_parser().parse_args(["--model", "m", *flags]), whisper)

    assert limit() == 120.0 and limit("--max-audio-seconds", "0") == 120.0  # 4 windows of 30 s
    assert limit("--max-audio-seconds", "600") == 120.0 and limit("--max-audio-seconds", "45") == 45.0
    assert audio_seconds_limit(build_parser().parse_args(["--model", "m"]), {"encoder": {"name": "wavlm"}}) is None
