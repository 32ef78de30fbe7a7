"""Whisper encoder: tapped states equal HF's, padding invariance, long audio, frozen mode, meta builds.

A tiny random Whisper (d_model 64, 4 encoder layers) is built and saved in a temp dir, so these
tests need no asset cache; one slow test checks the real whisper-tiny.en from the cache.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from toolkit.models.encoders import ENCODERS
from toolkit.models.encoders.whisper import WhisperEncoder, default_tapped_layers
from toolkit.models.loading import AssetMissingError, skip_weights

SR = 16000


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> tuple[str, WhisperForConditionalGeneration]:
    config = WhisperConfig(
        d_model=64, encoder_layers=4, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=51864, num_mel_bins=80,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    path = tmp_path_factory.mktemp("tiny_whisper")
    model.save_pretrained(path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(path)
    return str(path), model


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 0.1).astype(np.float32)


def test_default_taps_follow_desta():
    assert default_tapped_layers(4) == [0, 1, 2, 3]
    assert default_tapped_layers(6) == [1, 2, 4, 5]
    assert default_tapped_layers(12) == [2, 5, 8, 11]
    assert default_tapped_layers(24) == [5, 11, 17, 23]
    assert default_tapped_layers(32) == [7, 15, 23, 31]


@pytest.mark.parametrize("reference_compatible, seconds", [(True, 5.0), (False, 30.0)])
def test_taps_equal_hf_hidden_states(tiny_whisper, reference_compatible, seconds):
    """Tap i == HF hidden_states[i + 1] on the 30 s input; the last tap is before the final LayerNorm."""
    path, hf = tiny_whisper
    enc = WhisperEncoder(path, reference_compatible=reference_compatible)
    feats = enc.feature_extractor()([noise(seconds)])
    assert feats["features"].shape == (1, 80, 3000)
    out = enc(**feats)
    with torch.no_grad():
        ref = hf.model.encoder(feats["features"], output_hidden_states=True)
    assert out.lengths.tolist() == [1500]
    for k, layer in enumerate(enc.tapped_layers[:-1]):
        torch.testing.assert_close(out.hidden_states[k], ref.hidden_states[layer + 1], rtol=1e-5, atol=1e-5)
    last = out.hidden_states[-1]
    assert not torch.allclose(last, ref.last_hidden_state, atol=1e-3)  # no final LayerNorm on taps
    with torch.no_grad():
        torch.testing.assert_close(hf.model.encoder.layer_norm(last), ref.last_hidden_state, rtol=1e-5, atol=1e-5)


def test_stops_after_last_tap(tiny_whisper):
    path, hf = tiny_whisper
    enc = WhisperEncoder(path, tapped_layers=[1], reference_compatible=True)
    assert len(enc.encoder.layers) == 2 and enc.num_tapped == 1
    feats = enc.feature_extractor()([noise(2.0)])
    with torch.no_grad():
        ref = hf.model.encoder(feats["features"], output_hidden_states=True)
    torch.testing.assert_close(enc(**feats).hidden_states[0], ref.hidden_states[2], rtol=1e-5, atol=1e-5)


def test_bad_taps_name_the_key(tiny_whisper):
    with pytest.raises(ValueError, match="tapped_layers"):
        WhisperEncoder(tiny_whisper[0], tapped_layers=[2, 7])


def test_clip_encodes_the_same_alone_and_beside_a_longer_one(tiny_whisper):
    enc = WhisperEncoder(tiny_whisper[0])
    fe = enc.feature_extractor()
    short, long = noise(3.0, 1), noise(7.3, 2)
    alone = enc(**fe([short]))
    batch = enc(**fe([short, long]))
    assert alone.lengths.tolist() == [150]
    assert batch.lengths.tolist() == [150, 365]
    for a, b in zip(alone.hidden_states, batch.hidden_states):
        torch.testing.assert_close(b[0, :150], a[0], rtol=1e-4, atol=1e-5)
        assert torch.all(b[0, 150:] == 0)
    # the long clip is unaffected by the short one too
    long_alone = enc(**fe([long]))
    torch.testing.assert_close(batch.hidden_states[-1][1], long_alone.hidden_states[-1][0], rtol=1e-4, atol=1e-5)


def test_reference_mode_pads_every_window_to_30s(tiny_whisper):
    enc = WhisperEncoder(tiny_whisper[0], reference_compatible=True)
    feats = enc.feature_extractor()([noise(1.0), noise(4.0)])
    assert feats["features"].shape[-1] == 3000 and feats["feature_lengths"].tolist() == [3000, 3000]
    out = enc(**feats)
    assert out.lengths.tolist() == [1500, 1500] and out.hidden_states[0].shape == (2, 1500, 64)
    with pytest.raises(ValueError, match="reference_compatible"):
        enc(torch.zeros(1, 80, 200), torch.tensor([200]))


@pytest.mark.parametrize("reference_compatible, frames_20s, frames_45s", [(False, 1000, 2250), (True, 1500, 3000)])
def test_long_audio_is_chunked_not_cut(tiny_whisper, reference_compatible, frames_20s, frames_45s):
    enc = WhisperEncoder(tiny_whisper[0], reference_compatible=reference_compatible)
    fe = enc.feature_extractor()
    long = noise(45.0, 3)
    out = enc(**fe([noise(20.0), long]))
    assert out.lengths.tolist() == [frames_20s, frames_45s]
    assert out.lengths[1] > out.lengths[0]
    # windows are independent: the first 30 s of the 45 s clip encode like that 30 s alone
    head = enc(**fe([long[: 30 * SR]]))
    torch.testing.assert_close(out.hidden_states[-1][1, :1500], head.hidden_states[-1][0], rtol=1e-4, atol=1e-5)


def test_too_long_audio_names_duration_and_knob(tiny_whisper):
    enc = WhisperEncoder(tiny_whisper[0], max_chunks=1)
    with pytest.raises(ValueError, match=r"45\.0 s.*max_chunks=1"):
        enc.feature_extractor()([noise(45.0)])
    with pytest.raises(ValueError, match="max_chunks"):
        enc(torch.zeros(1, 80, 4000), torch.tensor([4000]))


def test_frozen_stays_in_eval_and_has_no_grad(tiny_whisper):
    enc = WhisperEncoder(tiny_whisper[0])
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    out = enc.encode_waveforms([noise(1.0)])
    assert out.hidden_states[0].grad_fn is None

    trainable = WhisperEncoder(tiny_whisper[0], frozen=False)
    trainable.train()
    # HF keeps the sinusoidal positional table frozen; everything else trains
    assert trainable.training and all(p.requires_grad for n, p in trainable.named_parameters() if "embed_positions" not in n)
    trainable.encode_waveforms([noise(1.0)]).hidden_states[-1].sum().backward()
    assert trainable.encoder.conv1.weight.grad is not None


def test_feature_extractor_is_picklable(tiny_whisper):
    enc = WhisperEncoder(tiny_whisper[0])
    fe = enc.feature_extractor()
    clone = pickle.loads(pickle.dumps(fe))
    waves = [noise(1.0), noise(0.5, 1)]
    a, b = fe(waves), clone(waves)
    assert a["features"].dtype == torch.float32 and a["feature_lengths"].dtype == torch.long
    assert a["feature_lengths"].tolist() == [100, 50] and a["features"].shape == (2, 80, 100)
    torch.testing.assert_close(a["features"], b["features"])
    assert enc.output_size == 64 and enc.num_tapped == 4 and enc.frame_rate == 50


def test_registry_build_and_missing_path(tiny_whisper):
    enc = ENCODERS.build({"name": "whisper", "model_path": tiny_whisper[0], "tapped_layers": [0, 3]})
    assert isinstance(enc, WhisperEncoder) and enc.tapped_layers == [0, 3]
    with pytest.raises(AssetMissingError, match="does not exist"):
        WhisperEncoder("/nonexistent/whisper-dir")


def test_meta_build_from_preset_large_v3():
    with skip_weights():
        enc = ENCODERS.build({"name": "whisper", "model_path": "openai/whisper-large-v3", "preset": "whisper-large-v3"})
    assert enc.tapped_layers == [7, 15, 23, 31] and enc.output_size == 1280 and enc.num_tapped == 4
    assert all(p.device.type == "meta" for p in enc.parameters())
    assert len(enc.encoder.layers) == 32
    assert enc.feature_extractor().extractor.feature_size == 128  # large-v3 uses 128 mel bins
    assert sum(p.numel() for p in enc.parameters()) == 636_968_960 - 2 * 1280  # HF encoder minus final LayerNorm


@pytest.mark.slow
def test_real_whisper_tiny_en_taps_on_real_speech():
    from toolkit.audio import load_audio
    from toolkit.config import cache_dir

    model_dir = cache_dir() / "models" / "whisper-tiny.en"
    clip = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
    if not (model_dir / "config.json").is_file():
        pytest.fail(f"{model_dir} is absent: run `python tools/prepare_assets.py` to convert whisper-tiny.en")
    if not clip.is_file():
        pytest.fail(f"{clip} is absent: apt-get install pocketsphinx-testdata")
    wave = load_audio(str(clip))
    enc = WhisperEncoder(str(model_dir), reference_compatible=True)
    feats = enc.feature_extractor()([wave])
    hf = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    with torch.no_grad():
        ref = hf.model.encoder(feats["features"], output_hidden_states=True)
    out = enc(**feats)
    assert enc.output_size == 384 and out.hidden_states[0].shape == (1, 1500, 384)
    for k, layer in enumerate(enc.tapped_layers[:-1]):
        torch.testing.assert_close(out.hidden_states[k], ref.hidden_states[layer + 1], rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(hf.model.encoder.layer_norm(out.hidden_states[-1]), ref.last_hidden_state, rtol=1e-4, atol=1e-4)
    # true-length mode: 10 ms mel frames, halved by the stride-2 convolution
    short = WhisperEncoder(str(model_dir)).encode_waveforms([wave])
    assert short.lengths.item() == (len(wave) // 160 + 1) // 2


def test_non_finite_padded_frames_inside_the_encoder_never_reach_a_clip(tiny_whisper):
    # Padded rows are computed too (then dropped); a NaN a fused bf16 kernel leaves in one must not reach
    # the valid frames through the next layer's attention, whose mask only weights padded keys by ~0.
    enc = WhisperEncoder(tiny_whisper[0])
    fe = enc.feature_extractor()
    short, long = noise(3.0, 1), noise(7.3, 2)
    alone = enc(**fe([short]))
    first = enc.encoder.layers[0]
    real = first.forward

    def poisoned(hidden, *args, **kwargs):
        out = real(hidden, *args, **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        out = out.clone()
        out[0, 150:] = float("nan")  # the short clip's padded rows
        return out

    first.forward = poisoned
    try:
        batch = enc(**fe([short, long]))
    finally:
        first.forward = real
    for a, b in zip(alone.hidden_states[1:], batch.hidden_states[1:]):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(b[0, :150], a[0], rtol=1e-4, atol=1e-5)
