"""WavLM / HuBERT / wav2vec 2.0 encoders: taps equal HF's, padding invariance, lengths, meta builds.

Tiny random models (hidden 32, 4 layers) of both conv-stack kinds (GroupNorm "base" and
LayerNorm "large") are built and saved in temp dirs; no asset cache needed.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

from toolkit.models.encoders import ENCODERS
from toolkit.models.encoders.hf_ssl import HFSSLEncoder, evenly_spaced_layers
from toolkit.models.loading import skip_weights

KINDS = {"wavlm": (WavLMConfig, WavLMModel), "hubert": (HubertConfig, HubertModel), "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model)}
SMALL = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64, conv_dim=(32,) * 7,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


@pytest.fixture(scope="module", params=[(k, norm) for k in KINDS for norm in ("group", "layer")], ids=lambda p: f"{p[0]}-{p[1]}")
def tiny_ssl(request, tmp_path_factory):
    kind, norm = request.param
    config_class, model_class = KINDS[kind]
    extra = dict(num_buckets=32, max_bucket_distance=64) if kind == "wavlm" else {}
    config = config_class(**SMALL, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer", conv_bias=norm == "layer", **extra)
    torch.manual_seed(0)
    model = model_class(config).eval()
    path = tmp_path_factory.mktemp(f"tiny_{kind}_{norm}")
    model.save_pretrained(path)
    return kind, str(path), model


def noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_evenly_spaced_layers():
    assert evenly_spaced_layers(12) == [2, 5, 8, 11]
    assert evenly_spaced_layers(24) == [5, 11, 17, 23]
    assert evenly_spaced_layers(2) == [0, 1]


def test_taps_equal_hf_hidden_states(tiny_ssl):
    kind, path, hf = tiny_ssl
    enc = ENCODERS.build({"name": kind, "model_path": path})
    assert enc.tapped_layers == [0, 1, 2, 3] and enc.output_size == 32 and enc.num_tapped == 4 and enc.frame_rate == 50
    feats = enc.feature_extractor()([noise(16000, 0)])
    out = enc(**feats)
    with torch.no_grad():
        ref = hf(feats["features"], output_hidden_states=True)
    assert out.lengths.tolist() == [49] == [ref.last_hidden_state.shape[1]]
    for k, layer in enumerate(enc.tapped_layers):
        torch.testing.assert_close(out.hidden_states[k], ref.hidden_states[layer + 1], rtol=1e-5, atol=1e-5)


def test_clip_encodes_the_same_alone_and_beside_a_longer_one(tiny_ssl):
    kind, path, _ = tiny_ssl
    enc = ENCODERS.build({"name": kind, "model_path": path, "tapped_layers": [1, 3]})
    assert len(enc.model.encoder.layers) == 4
    fe = enc.feature_extractor()
    short, long = noise(8000, 1), noise(19000, 2)
    alone, batch = enc(**fe([short])), enc(**fe([short, long]))
    n = int(alone.lengths[0])
    assert batch.lengths.tolist() == [n, int(enc.output_lengths(torch.tensor([19000])))]
    for a, b in zip(alone.hidden_states, batch.hidden_states):
        torch.testing.assert_close(b[0, :n], a[0], rtol=1e-4, atol=1e-5)
        assert torch.all(b[0, n:] == 0)


def test_stops_after_last_tap_and_frozen(tiny_ssl):
    kind, path, _ = tiny_ssl
    enc = ENCODERS.build({"name": kind, "model_path": path, "tapped_layers": [1]})
    assert len(enc.model.encoder.layers) == 2
    enc.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    assert enc.encode_waveforms([noise(4000, 3)]).hidden_states[0].grad_fn is None
    with pytest.raises(ValueError, match="tapped_layers"):
        ENCODERS.build({"name": kind, "model_path": path, "tapped_layers": [4]})


def test_feature_extractor_normalises_per_preprocessor(tiny_ssl, tmp_path):
    kind, path, _ = tiny_ssl
    enc = ENCODERS.build({"name": kind, "model_path": path})
    fe = enc.feature_extractor()
    assert fe.normalize == (enc.model.config.feat_extract_norm == "layer")  # no preprocessor_config.json: fairseq rule
    fe = pickle.loads(pickle.dumps(HFSSLEncoder.feature_extractor(enc)))
    wave = noise(3000, 4) * 3 + 1
    out = fe([wave, wave[:100]])
    assert out["feature_lengths"].tolist() == [3000, 400]  # too short clips are padded to the conv receptive field
    if fe.normalize:
        assert abs(float(out["features"][0].mean())) < 1e-4 and abs(float(out["features"][0].std()) - 1) < 1e-2
    else:
        torch.testing.assert_close(out["features"][0], torch.from_numpy(wave))


def test_preprocessor_config_wins(tmp_path):
    config = WavLMConfig(**SMALL, num_buckets=32, max_bucket_distance=64)  # group norm: fairseq rule says no normalising
    WavLMModel(config).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True}))
    assert ENCODERS.build({"name": "wavlm", "model_path": str(tmp_path)}).feature_extractor().normalize


@pytest.mark.parametrize("name, preset, width, taps", [
    ("wavlm", "wavlm-large", 1024, [5, 11, 17, 23]),
    ("wavlm", "wavlm-base-plus", 768, [2, 5, 8, 11]),
    ("hubert", "hubert-large", 1024, [5, 11, 17, 23]),
    ("hubert", "hubert-base", 768, [2, 5, 8, 11]),
])
def test_meta_build_from_preset(name, preset, width, taps):
    with skip_weights():
        enc = ENCODERS.build({"name": name, "preset": preset})
    assert enc.output_size == width and enc.tapped_layers == taps
    assert all(p.device.type == "meta" for p in enc.parameters())


def test_non_finite_padded_rows_inside_the_encoder_never_reach_a_clip(tiny_ssl):
    # As for Whisper: a NaN a fused kernel leaves in a padded row must not reach the valid frames through the
    # next layer's attention (its mask weights padded keys by ~0, and 0 x NaN is NaN).
    kind, path, _ = tiny_ssl
    enc = ENCODERS.build({"name": kind, "model_path": path, "tapped_layers": [1, 3]})
    fe = enc.feature_extractor()
    short, long = noise(8000, 1), noise(19000, 2)
    alone = enc(**fe([short]))
    n = int(alone.lengths[0])
    first = enc.model.encoder.layers[0]
    real = first.forward

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        hidden = (out[0] if isinstance(out, tuple) else out).clone()
        hidden[0, n:] = float("nan")
        return (hidden, *out[1:]) if isinstance(out, tuple) else hidden

    first.forward = poisoned
    try:
        batch = enc(**fe([short, long]))
    finally:
        first.forward = real
    for a, b in zip(alone.hidden_states, batch.hidden_states):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(b[0, :n], a[0], rtol=1e-4, atol=1e-5)
