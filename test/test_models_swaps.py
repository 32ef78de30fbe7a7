"""Every registered encoder, adapter and LLM family trains a step through YAML swaps alone (tiny configs)."""

import numpy as np
import pytest
import torch

from toolkit.models.chat import AUDIO_TOKEN
from toolkit.models.lalm import LALM


@pytest.fixture(scope="module")
def tiny_llms(tiny_dirs, tmp_path_factory):
    """Tiny random Qwen2 (real Qwen2 tokenizer) and GPT-2 (no chat template: the plain one is used)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    from toolkit.assets import asset_dir

    root = tmp_path_factory.mktemp("llms")
    torch.manual_seed(0)
    qtok = AutoTokenizer.from_pretrained(asset_dir("qwen2-tokenizer"))
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(qtok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, eos_token_id=qtok.eos_token_id))
    qwen.save_pretrained(root / "qwen2"), qtok.save_pretrained(root / "qwen2")
    gtok = AutoTokenizer.from_pretrained(tiny_dirs["tiny-llama"])
    gtok.chat_template = None
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(gtok), n_embd=32, n_layer=2, n_head=4, eos_token_id=gtok.eos_token_id))
    gpt2.save_pretrained(root / "gpt2"), gtok.save_pretrained(root / "gpt2")
    return {"llama": tiny_dirs["tiny-llama"], "qwen2": str(root / "qwen2"), "gpt2": str(root / "gpt2")}


def train_one_step(cfg):
    torch.manual_seed(0)
    model = LALM.from_config(cfg).train()
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (12000, 20000)]
    convs = [model.formatter.encode([{"role": "user", "content": f"{AUDIO_TOKEN}\nWhat is it?", "audios": [{"audio": None}]}], ["hi"], response=r)
             for r in ("A dog barking.", "Someone says hello twice.")]
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-2)
    loss = model(conversations=convs, features=model.encoder.feature_extractor()(waves))["loss"]
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, params)), "no trainable weight moved"
    assert model.generate([{"role": "user", "content": f"{AUDIO_TOKEN}\nWhat?", "audios": [{"audio": waves[0], "text": "hi"}]}],
                          generation={"max_new_tokens": 3}) is not None
    return model


ENCODERS = {
    "whisper": lambda d: {"name": "whisper", "model_path": d["tiny-whisper"]},
    "wavlm": lambda d: {"name": "wavlm", "model_path": d["tiny-wavlm"]},
    "hubert": lambda d: {"name": "hubert", "model_path": d["tiny-hubert"]},
    "wav2vec2": lambda d: {"name": "wav2vec2", "model_path": d["tiny-wav2vec2"]},
}
ADAPTERS = {
    "qformer": {"name": "qformer", "num_layers": 1, "num_queries": 4, "num_heads": 4, "intermediate_size": 64},
    "mlp": {"name": "mlp", "stack_frames": 4},
    "window_qformer": {"name": "window_qformer", "window_size": 17, "queries_per_window": 1, "num_layers": 1, "num_heads": 4},
    "pooled": {"name": "pooled", "num_vectors": 3},
    "pooled_global": {"name": "pooled", "num_vectors": 3, "normalize": "global"},
}


def base(encoder, adapter, llm_path, lora=None):
    return {"encoder": encoder, "adapter": adapter,
            "llm": {"name": "hf_causal_lm", "model_path": llm_path, "dtype": "float32", "lora": lora},
            "transcriber": {"name": "given", "missing": "empty"}, "lalm": {"transcript_max_tokens": 4}}


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_every_encoder_trains_a_step(encoder, tiny_dirs, tiny_llms):
    train_one_step(base(ENCODERS[encoder](tiny_dirs), ADAPTERS["qformer"], tiny_llms["llama"]))


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_every_adapter_trains_a_step(adapter, tiny_dirs, tiny_llms):
    train_one_step(base(ENCODERS["whisper"](tiny_dirs), ADAPTERS[adapter], tiny_llms["llama"]))


@pytest.mark.parametrize("llm", ["llama", "qwen2", "gpt2"])
def test_every_llm_family_trains_a_step(llm, tiny_dirs, tiny_llms):
    train_one_step(base(ENCODERS["whisper"](tiny_dirs), ADAPTERS["mlp"], tiny_llms[llm]))


def test_adapter_statistics_are_saved_with_the_weights(tiny_dirs, tiny_llms, tmp_path):
    """The pooled adapter's normalisation statistics change in training and come back with from_pretrained."""
    model = train_one_step(base(ENCODERS["whisper"](tiny_dirs), ADAPTERS["pooled_global"], tiny_llms["llama"]))
    state = model.trainable_state_dict()
    assert {"adapter.channel_mean", "adapter.channel_var", "adapter.frames_seen"} <= set(state)
    assert state["adapter.frames_seen"].item() > 0
    model.save_pretrained(tmp_path)
    again = LALM.from_pretrained(tmp_path).trainable_state_dict()
    assert set(again) == set(state)
    for k, v in state.items():
        assert torch.equal(v, again[k]), k


def test_lora_trains_adapter_and_lora_only_and_saves_both(tiny_dirs, tiny_llms, tmp_path):
    model = train_one_step(base(ENCODERS["whisper"](tiny_dirs), ADAPTERS["mlp"], tiny_llms["llama"],
                                lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and all(n.startswith("adapter.") or "lora_" in n for n in trainable)
    model.save_pretrained(tmp_path)
    again = LALM.from_pretrained(tmp_path)
    for k, v in model.trainable_state_dict().items():
        assert torch.equal(v, again.trainable_state_dict()[k])
