"""The server, asked with the official ``openai`` client on 127.0.0.1: answers, streaming, batching, refusals.

A tiny random-init export serves (answers are token soup, but they must equal ``LALM.generate``'s);
a fake backend with a fixed answer checks the streaming text itself. The slow test serves the
demo-sized model (Whisper tiny.en ASR + SmolLM2) on a real clip through the CLI.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

openai = pytest.importorskip("openai", reason="the openai client is needed: pip install -e .[serve]")
pytest.importorskip("fastapi", reason="the serve extra is needed: pip install -e .[serve]")

from toolkit.serve.app import create_app  # noqa: E402
from toolkit.serve.backend import HFBackend  # noqa: E402
from toolkit.serve.local import serve_in_thread, stop_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def wav_part(seconds: float = 1.0, seed: int = 0, transcript: str | None = "a short clip", fmt: str = "WAV") -> dict:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    sf.write(buf, (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32), 16000, format=fmt)
    inner = {"data": base64.b64encode(buf.getvalue()).decode(), "format": fmt.lower()}
    if transcript is not None:
        inner["transcript"] = transcript
    return {"type": "input_audio", "input_audio": inner}


def user(text: str, *parts: dict) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}, *parts]}


@pytest.fixture(scope="module")
def tiny_export(tiny_model_config, tmp_path_factory):
    from toolkit.models.lalm import LALM

    return LALM.from_config(tiny_model_config).save_pretrained(tmp_path_factory.mktemp("serve") / "tiny-export")


@pytest.fixture(scope="module")
def backend(tiny_export):
    """The tiny export, its LLM re-drawn with a wider init: the stock tiny Llama answers every prompt with
    newlines (empty text after stripping), which would make "served == generate" hold trivially."""
    import torch

    backend = HFBackend.from_export(tiny_export)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in backend.model.llm.model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return backend


@pytest.fixture(scope="module")
def server(backend):
    app = create_app(backend, max_batch_size=4, batch_wait_ms=200, max_audio_seconds=5)
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0, timeout=120)


def direct(backend, messages_as_conversation):
    return backend.model.generate(messages_as_conversation, return_details=True)


def as_conversation(text: str, seed: int = 0, seconds: float = 1.0, transcript: str = "a short clip") -> list[dict]:
    rng = np.random.default_rng(seed)
    wave = (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
    return [{"role": "user", "content": f"<|AUDIO|>\n{text}", "audios": [{"audio": wave, "text": transcript}]}]


def test_models_lists_the_export(client, backend):
    assert [m.id for m in client.models.list().data] == [backend.name] == ["tiny-export"]


def test_answer_equals_generate_and_carries_the_transcript(client, backend):
    reply = client.chat.completions.create(model=backend.name, messages=[user("What is said?", wav_part(seed=1))])
    expected = direct(backend, as_conversation("What is said?", seed=1))
    msg = reply.choices[0].message
    assert msg.content == expected["text"] and len(msg.content) > 10
    assert msg.transcripts == ["a short clip"]
    assert reply.choices[0].finish_reason == expected["finish_reason"]
    assert reply.usage.completion_tokens == expected["num_tokens"] > 0
    assert reply.usage.prompt_tokens > 0


def test_max_tokens_is_honoured(client, backend):
    reply = client.chat.completions.create(model=backend.name, max_tokens=2, messages=[user("Hi", wav_part(seed=2))])
    assert reply.usage.completion_tokens <= 2


def test_stream_reassembles_to_the_full_answer(client, backend):
    messages = [user("Describe it.", wav_part(seed=3))]
    full = client.chat.completions.create(model=backend.name, messages=messages)
    chunks = list(client.chat.completions.create(model=backend.name, messages=messages, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.transcripts == ["a short clip"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_concurrent_requests_are_batched_and_unchanged(client, backend, server):
    stats_before = server[1].state.batcher.stats()
    questions = [(f"Question {i}?", 10 + i) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda q: client.chat.completions.create(model=backend.name, messages=[user(q[0], wav_part(seed=q[1]))]), questions))
    stats = server[1].state.batcher.stats()
    assert stats["requests"] - stats_before["requests"] == 6
    assert max(int(k) for k in stats["batch_sizes"]) > 1, stats
    answers = [r.choices[0].message.content for r in replies]
    for (q, seed), answer in zip(questions, answers):  # left padding leaves each answer as it is alone
        assert answer == direct(backend, as_conversation(q, seed=seed))["text"]
    assert len(set(answers)) > 1  # requests are not mixed up: different inputs, different answers


def truncated_wav_part() -> dict:
    part = wav_part(seconds=2.0)
    raw = base64.b64decode(part["input_audio"]["data"])
    part["input_audio"]["data"] = base64.b64encode(raw[: len(raw) // 2]).decode()
    return part


BAD_REQUESTS = [
    ("non-audio upload",
     {"messages": [user("x", {"type": "input_audio", "input_audio": {
         "data": base64.b64encode(b"plain text, not audio" * 50).decode(), "format": "wav"}})]},
     400, "not a decodable wav"),
    ("empty file", {"messages": [user("x", {"type": "input_audio", "input_audio": {"data": "", "format": "mp3"}})]}, 400, "empty"),
    ("truncated file", {"messages": [user("x", truncated_wav_part())]}, 400, "truncated"),
    ("over the length limit", {"messages": [user("x", wav_part(seconds=6.0))]}, 400, "over this server's limit of 5 s"),
    ("placeholder count", {"messages": [user("<|AUDIO|> and <|AUDIO|>?", wav_part())]}, 400, r"2 <|AUDIO|> placeholder(s) but the message has 1"),
    ("unsupported format", {"messages": [user("x", {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "aac"}})]}, 400, "'aac' is not supported"),
    ("unknown model", {"model": "whisper-1", "messages": [user("x", wav_part())]}, 404, "'whisper-1' is not served here"),
]


@pytest.mark.parametrize("label, body, status, words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_is_a_4xx_naming_the_problem_and_the_server_keeps_serving(client, backend, label, body, status, words):
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(**{"model": backend.name, **body})
    assert info.value.status_code == status
    assert words in info.value.message
    ok = client.chat.completions.create(model=backend.name, messages=[user("Still there?", wav_part(seed=4))])
    assert ok.choices[0].finish_reason in ("stop", "length")


def test_invalid_json_body_is_400(server):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(server[0] + "/v1/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 400 and b"not valid JSON" in info.value.read()


class FixedBackend:
    """Answers every conversation with one sentence (checks the wire format, not the model)."""

    name = "fixed"
    default_generation: dict = {}
    answer = "Hello there, it is a dog barking twice."

    def missing_transcript_problem(self, conversation):
        return None

    def generate(self, conversations, generation):
        return [{"text": self.answer, "transcripts": [a["text"] or "" for m in c for a in m.get("audios") or []],
                 "finish_reason": "stop", "num_tokens": 9, "prompt_tokens": 5} for c in conversations]


def test_stream_chunks_of_a_real_sentence_and_stop_strings():
    with serve_in_thread(create_app(FixedBackend(), max_batch_size=2, batch_wait_ms=5)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
        chunks = list(client.chat.completions.create(model="fixed", messages=[user("x", wav_part(transcript="woof woof"))], stream=True))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert "".join(pieces) == FixedBackend.answer and len(pieces) == 8
        assert chunks[0].choices[0].delta.transcripts == ["woof woof"]
        cut = client.chat.completions.create(model="fixed", messages=[{"role": "user", "content": "x"}], stop=[","])
        assert cut.choices[0].message.content == "Hello there" and cut.choices[0].finish_reason == "stop"


def test_given_transcriber_without_a_transcript_is_a_400(tiny_model_config, tmp_path):
    from toolkit.models.lalm import LALM

    cfg = {**tiny_model_config, "transcriber": {"name": "given", "missing": "error"}}
    backend = HFBackend(LALM.from_config(cfg).eval(), "strict")
    with serve_in_thread(create_app(backend)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError, match="add 'transcript' to the input_audio object"):
            client.chat.completions.create(model="strict", messages=[user("x", wav_part(transcript=None))])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli_server(export_dir: Path, extra: list[str], timeout: float):
    """Start ``python -m toolkit.bin.serve`` and wait for /health; returns (process, base_url)."""
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.bin.serve", "--model", str(export_dir), "--port", str(port), *extra], start_new_session=True,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}:\n{proc.stdout.read()}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"server did not start within {timeout} s:\n{proc.communicate()[0]}")


def test_cli_serves_and_refuses_a_non_export(tiny_export):
    bad = subprocess.run([sys.executable, "-m", "toolkit.bin.serve", "--model", str(tiny_export.parent)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not an exported model" in bad.stderr
    proc, url = run_cli_server(tiny_export, ["--served-model-name", "tiny", "--max-batch-size", "2"], timeout=90)
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model="tiny", messages=[user("What is it?", wav_part(seed=5))])
        assert reply.choices[0].message.transcripts == ["a short clip"]
    finally:
        stop_process(proc, timeout=30)
    assert proc.returncode is not None


@pytest.mark.slow
def test_real_clip_through_the_cli_with_whisper_asr(tmp_path):
    """Demo-sized model: Whisper tiny.en transcribes a real LibriVox clip; SmolLM2 answers about it."""
    from toolkit.config import cache_dir
    from toolkit.models.lalm import LALM

    models = cache_dir() / "models"
    clip = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav"
    if not clip.exists():
        pytest.fail(f"{clip} is missing: apt-get install pocketsphinx-testdata (tools/install.sh does)")
    export = tmp_path / "demo-export"
    LALM.from_config({
        "encoder": {"name": "whisper", "model_path": str(models / "whisper-tiny.en")},
        "adapter": {"name": "qformer", "num_layers": 1, "num_queries": 8, "intermediate_size": 256},
        "llm": {"name": "hf_causal_lm", "model_path": str(models / "smollm2-135m-instruct"), "dtype": "float32"},
        "transcriber": {"name": "whisper", "model_path": str(models / "whisper-tiny.en")},
        "lalm": {"system_prompt": "Focus on the audio clips and instructions."},
        "generation": {"max_new_tokens": 40},
    }).save_pretrained(export)
    proc, url = run_cli_server(export, [], timeout=180)
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
        with open(clip, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        reply = client.chat.completions.create(model="demo-export", messages=[
            user("Repeat what the speaker says.", {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})])
    finally:
        stop_process(proc, timeout=30)
    transcript = reply.choices[0].message.transcripts[0].lower()
    # reference: "and mister john dashwood had then leisure to consider how much there might be prudently in his power..."
    assert "dashwood" in transcript and "leisure" in transcript, transcript
    assert reply.choices[0].message.content.strip(), "the model gave an empty answer"
    print("transcript:", transcript, "\nanswer:", reply.choices[0].message.content)



@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed: the server starts "
                    "(test_serve_vllm.py tests it)")
def test_cli_vllm_backend_refuses_clearly_when_unavailable(tiny_export):
    out = subprocess.run([sys.executable, "-m", "toolkit.bin.serve", "--model", str(tiny_export), "--backend", "vllm"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--backend vllm:" in out.stderr and "--backend hf" in out.stderr


def test_stop_process_leaves_no_child_behind(tmp_path):
    """A server's children (vLLM's engine processes) go with it; a plain terminate would orphan them."""
    import os

    pid_file = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
              f"open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    stop_process(proc, timeout=10)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a killed child stays a zombie until reaped by init; zombies hold no memory
        if open(f"/proc/{child}/stat").read().split()[2] == "Z":
            break
        assert time.monotonic() < deadline, "the server's child outlived it"
        time.sleep(0.05)
