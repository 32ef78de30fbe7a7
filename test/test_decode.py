"""Decoding: batched through the one generate(), resumable, a bad clip never kills the run."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from toolkit.models.eval_decoding import decode_rows
from toolkit.models.chat_engines import CHAT_ENGINES
from toolkit.models.lalm import LALM


@pytest.fixture(scope="module")
def exported(tiny_model_config, tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("export")
    LALM.from_config(tiny_model_config).save_pretrained(out)
    return out


def manifest(tmp_path, n=5):
    rows = []
    for i in range(n):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, np.random.default_rng(i).standard_normal(4000 + 2000 * i).astype(np.float32) * 0.1, 16000)
        rows.append({"id": f"c{i}#asr", "dataset": "t", "audio": str(path), "text": "hello" if i % 2 else None,
                     "prompt": "What is said?", "reference": "hello", "metric": "wer", "choices": None})
    return rows


def test_decode_is_resumable_and_survives_bad_audio(exported, tmp_path):
    model = CHAT_ENGINES.build({"name": "hf", "model_dir": str(exported)})  # the decode stage's engine
    rows = manifest(tmp_path)
    (tmp_path / "c2.wav").write_bytes(b"not audio")
    out = tmp_path / "dec" / "decode.jsonl"
    first = decode_rows(model, rows[:3], out, batch_size=2, progress=False)
    stats = decode_rows(model, rows, out, batch_size=2, progress=False)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in rows)
    assert first["audio_errors"] == 1 and stats["already_done"] == 3 and stats["decoded"] == 2
    bad = next(r for r in got if r["id"] == "c2#asr")
    assert bad["finish_reason"] == "error" and bad["prediction"] == ""
    good = next(r for r in got if r["id"] == "c1#asr")
    assert good["transcript"] == "hello" and good["metric"] == "wer" and "prediction" in good


def test_batched_decoding_equals_one_by_one(exported, tmp_path):
    model = CHAT_ENGINES.build({"name": "hf", "model_dir": str(exported)})
    rows = manifest(tmp_path, 4)
    decode_rows(model, rows, tmp_path / "a.jsonl", batch_size=4, progress=False)
    decode_rows(model, rows, tmp_path / "b.jsonl", batch_size=1, progress=False)
    a = {r["id"]: r["prediction"] for r in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines())}
    b = {r["id"]: r["prediction"] for r in map(json.loads, (tmp_path / "b.jsonl").read_text().splitlines())}
    assert a == b


def test_a_retrained_model_is_decoded_again(exported, tmp_path, tiny_model_config):
    """Decoding resumes by id, so it must notice that the predictions came from other weights."""
    from toolkit.bin.decode import reset_if_stale
    from toolkit.decode.settings import model_identity

    out = tmp_path / "d" / "decode.jsonl"
    identity = model_identity(str(exported), [], {}, None)
    reset_if_stale(out, identity, force=False)
    out.write_text('{"id": "x"}\n')
    reset_if_stale(out, identity, force=False)
    assert out.exists()  # same model: resume
    reset_if_stale(out, {**identity, "weights_sha256": "other"}, force=False)
    assert not out.exists()  # other weights: start over


def test_missing_weights_are_an_error_not_a_random_adapter(exported, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        LALM.from_pretrained(broken)


def test_the_engine_is_chosen_by_its_registry_name_and_checked_before_loading(exported):
    """``decode.backend`` names a chat engine; the keys it does not take are refused naming the key."""
    from toolkit.config import ConfigError
    from toolkit.decode.settings import DecodeConfig

    def problems(**kwargs):
        section = DecodeConfig(model_dir=str(exported), eval_sets=[], output_dir="o", **kwargs)
        return CHAT_ENGINES.check(section.engine_node(), "decode")

    assert problems() == [] and problems(backend="vllm") == []
    assert any("unknown chat engine 'tgi'" in p and "hf, label_template, openai, vllm" in p for p in problems(backend="tgi"))
    assert any("decode.model_overrides: unknown key for VLLMChatEngine" in p
               for p in problems(backend="vllm", model_overrides=["lalm.max_seq_len=64"]))
    assert any("decode.max_model_len: unknown key for HFChatEngine" in p for p in problems(vllm={"max_model_len": 64}))
    with pytest.raises(ConfigError, match="exactly one of llm"):
        CHAT_ENGINES.build({"name": "hf", "model_dir": str(exported), "llm": {"name": "hf_causal_lm"}})
