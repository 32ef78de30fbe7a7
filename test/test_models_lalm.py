"""The composite LALM: splice, labels, loss, batched generation, save/load."""

import copy

import pytest
import torch

from toolkit.models.chat import AUDIO_TOKEN, IGNORE_INDEX, ConversationError
from toolkit.models.lalm import LALM, check_model_config


@pytest.fixture(scope="module")
def model(tiny_model_config):
    torch.manual_seed(0)
    return LALM.from_config(tiny_model_config).eval()


def conv(prompt=f"{AUDIO_TOKEN}\nWhat is said?", n_audio=1):
    return [{"role": "user", "content": prompt, "audios": [{"audio": None, "text": "hello"}] * n_audio}]


def test_labels_cover_only_response_and_end_of_turn(model):
    enc = model.formatter.encode(conv(), ["hello world"], response="It says hello.")
    targets = [t for t in enc.labels if t != IGNORE_INDEX]
    tok = model.llm.tokenizer
    assert tok.decode(targets) == "It says hello." + tok.eos_token
    # everything before the response is ignored, and the response is at the end
    first = next(i for i, t in enumerate(enc.labels) if t != IGNORE_INDEX)
    assert all(t == IGNORE_INDEX for t in enc.labels[:first]) and len(enc.input_ids) == len(enc.labels)
    text = tok.decode(enc.input_ids[: enc.audio_slots[0]])
    assert text.endswith("<start_audio>") and "Focus on the audio clips" in text
    assert tok.decode(enc.input_ids[enc.audio_slots[0]:first]).startswith("hello world<end_audio>")


def test_transcript_budget_and_audio_count_checks(model):
    long = " ".join(["word"] * 50)
    assert len(model.formatter.transcript_ids(long)) == 8
    with pytest.raises(ConversationError, match="placeholder"):
        model.formatter.encode([{"role": "user", "content": "no tag", "audios": [{"audio": None}]}])
    enc = model.formatter.encode(conv(f"{AUDIO_TOKEN} and {AUDIO_TOKEN}: same speaker?", 2), ["a", "b"])
    assert len(enc.audio_slots) == 2 and enc.audio_slots[0] < enc.audio_slots[1]


def test_vocabulary_is_never_resized(model, tiny_dirs):
    from transformers import AutoTokenizer

    assert model.llm.embed(torch.tensor([0])).shape[-1] == model.llm.hidden_size
    assert model.llm.model.get_input_embeddings().num_embeddings == len(AutoTokenizer.from_pretrained(tiny_dirs["tiny-llama"]))


def batch_inputs(model, waves):
    convs = [model.formatter.encode(conv(), ["hello"], response="Short."),
             model.formatter.encode(conv(f"Listen: {AUDIO_TOKEN} then {AUDIO_TOKEN}. Compare them in detail please.", 2), ["a b c", ""],
                                    response="A much longer answer than the other one, with many words.")]
    return convs


def test_loss_unchanged_by_left_padding(model, waves):
    convs = batch_inputs(model, waves)
    fx = model.encoder.feature_extractor()
    both = model(conversations=convs, features=fx(waves))
    a = model(conversations=convs[:1], features=fx(waves[:1]))
    b = model(conversations=convs[1:], features=fx(waves[1:]))
    pooled = (a["loss"] * a["n_targets"] + b["loss"] * b["n_targets"]) / (a["n_targets"] + b["n_targets"])
    assert torch.allclose(both["loss"], pooled, atol=1e-5), (both["loss"], pooled)


def test_lm_head_on_targets_equals_full_logits(model, waves):
    convs = batch_inputs(model, waves)
    feats = model.encoder.feature_extractor()(waves)
    fast = model(conversations=convs, features=feats)["loss"]
    model.lm_head_on_targets_only = False
    try:
        naive = model(conversations=convs, features=feats)["loss"]
    finally:
        model.lm_head_on_targets_only = True
    assert torch.allclose(fast, naive, atol=1e-5)


def test_gradients_reach_only_the_adapter(model, waves):
    convs = batch_inputs(model, waves)
    model.train()
    model.zero_grad()
    model(conversations=convs, features=model.encoder.feature_extractor()(waves))["loss"].backward()
    model.eval()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and all(n.startswith("adapter.") for n in grads)


def test_batch_generation_equals_one_by_one(model, waves):
    convs = [
        [{"role": "user", "content": f"{AUDIO_TOKEN}\nWhat is said?", "audios": [{"audio": waves[0], "text": "hi there"}]}],
        [{"role": "user", "content": f"Tell me about {AUDIO_TOKEN} in many more words please", "audios": [{"audio": waves[2], "text": None}]}],
        [{"role": "user", "content": "No audio, text only."}],
    ]
    batched = model.generate(convs, return_details=True)
    single = [model.generate(c, return_details=True) for c in convs]
    assert [b["text"] for b in batched] == [s["text"] for s in single]
    assert [b["num_tokens"] for b in batched] == [s["num_tokens"] for s in single]
    assert all(b["finish_reason"] in ("stop", "length") for b in batched)


def test_save_and_load_restore_identical_outputs(model, waves, tmp_path, tiny_model_config):
    with torch.no_grad():
        for p in model.adapter.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "export")
    saved = set(__import__("safetensors.torch", fromlist=["load_file"]).load_file(str(tmp_path / "export" / "model.safetensors")))
    assert saved and all(k.startswith("adapter.") for k in saved)  # frozen parts are referenced, not copied
    again = LALM.from_pretrained(tmp_path / "export")
    convs = batch_inputs(model, waves)
    feats = model.encoder.feature_extractor()(waves)
    assert torch.equal(model(conversations=convs, features=feats)["loss"], again(conversations=convs, features=feats)["loss"])


def test_config_problems_reported_together(tiny_model_config):
    cfg = copy.deepcopy(tiny_model_config)
    cfg["adapter"]["num_querys"] = 3
    cfg["llm"]["name"] = "gpt9"
    cfg["lalm"]["transcript_budget"] = 5
    problems = check_model_config(cfg)
    text = "\n".join(problems)
    assert "adapter.num_querys" in text and "unknown llm 'gpt9'" in text and "lalm.transcript_budget" in text
