"""Declared lengths: each registered encoder's ``num_frames`` and adapter's ``num_vectors`` equal ``forward``'s.

The tests are parametrized over the registries, so a new encoder or adapter is checked as soon as it
registers; it fails here until it has a tiny config in ``TINY_ENCODERS`` / ``TINY_ADAPTERS``.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import test_train_fakes  # noqa: F401  (registers the training fakes: the registries hold the same names in every run)
from toolkit.models.adapters import ADAPTERS
from toolkit.models.audio_vectors import AudioVectorCount
from toolkit.models.encoders import ENCODERS

WINDOW = 480_000  # 30 s at 16 kHz: Whisper's window
# Under one STFT window, both sides of a 320-sample hop, one 30 s window and a bit more (two windows).
NUM_SAMPLES = (1, 399, 401, 5_555, 16_000, 16_319, WINDOW, WINDOW + 1_234)
NUM_FRAMES = (1, 2, 4, 5, 6, 16, 17, 18, 51)


def _s3prl_checkpoint(tmp_path_factory) -> str:
    pytest.importorskip("s3prl", reason="s3prl is an optional engine: pip install --no-deps s3prl==0.4.18")
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

    from test_encoders_s3prl import TINY

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("s3prl") / "tiny_wavlm.pt"
    torch.save({"cfg": TINY, "model": WavLM(WavLMConfig(TINY)).state_dict()}, path)
    return str(path)


TINY_ENCODERS = {
    "whisper": lambda dirs, tmp: [{"model_path": dirs["tiny-whisper"]},
                                  {"model_path": dirs["tiny-whisper"], "reference_compatible": True}],
    "wavlm": lambda dirs, tmp: [{"model_path": dirs["tiny-wavlm"]}],
    "hubert": lambda dirs, tmp: [{"model_path": dirs["tiny-hubert"]}],
    "wav2vec2": lambda dirs, tmp: [{"model_path": dirs["tiny-wav2vec2"]}],
    "s3prl": lambda dirs, tmp: [{"upstream": "wavlm", "model_path": _s3prl_checkpoint(tmp)}],
    "train_fake_encoder": lambda dirs, tmp: [{}],
}

TINY_ADAPTERS = {
    "qformer": [{"num_layers": 1, "num_queries": 3, "num_heads": 2, "intermediate_size": 32, "dropout": 0.0}],
    "mlp": [{"stack_frames": 1}, {"stack_frames": 4}],
    "window_qformer": [{"window_size": 5, "queries_per_window": 2, "num_layers": 1, "num_heads": 2,
                        "intermediate_size": 32, "dropout": 0.0},
                       {"window_size": 17, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "dropout": 0.0}],
    "pooled": [{"num_vectors": 1}, {"num_vectors": 5, "normalize": "global"}],
    "train_fake_adapter": [{"stride": 25, "dropout": 0.0}],
}


def noise(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


@pytest.mark.parametrize("name", ENCODERS.choices())
def test_encoder_num_frames_equals_forward(name, tiny_dirs, tmp_path_factory):
    if name not in TINY_ENCODERS:
        pytest.fail(f"encoder '{name}' has no tiny config in TINY_ENCODERS ({__file__}); add one so that its "
                    f"num_frames is checked")
    for node in TINY_ENCODERS[name](tiny_dirs, tmp_path_factory):
        encoder = ENCODERS.build({"name": name, **node}, "encoder")
        declared = [encoder.num_frames(n) for n in NUM_SAMPLES]
        with torch.no_grad():  # one padded batch: every clip's own length must come back, not the batch's
            out = encoder(**encoder.feature_extractor()([noise(n, i) for i, n in enumerate(NUM_SAMPLES)]))
        assert out.lengths.tolist() == declared, f"{name} {node}"
        assert all(h.shape[1] == max(declared) for h in out.hidden_states)
        assert declared == sorted(declared)  # longer clips never get fewer frames


@pytest.mark.parametrize("name", ADAPTERS.choices())
def test_adapter_num_vectors_equals_forward(name):
    if name not in TINY_ADAPTERS:
        pytest.fail(f"adapter '{name}' has no tiny config in TINY_ADAPTERS ({__file__}); add one so that its "
                    f"num_vectors is checked")
    runtime = {"input_size": 16, "num_inputs": 2, "output_size": 8}
    for node in TINY_ADAPTERS[name]:
        torch.manual_seed(0)
        adapter = ADAPTERS.build({"name": name, **node}, "adapter", **runtime).eval()
        lengths = torch.tensor(NUM_FRAMES)
        states = [torch.randn(len(NUM_FRAMES), max(NUM_FRAMES), 16) for _ in range(2)]
        with torch.no_grad():
            vectors, counts = adapter(states, lengths)
        declared = [adapter.num_vectors(n) for n in NUM_FRAMES]
        assert counts.tolist() == declared, f"{name} {node}"
        assert vectors.shape[:2] == (len(NUM_FRAMES), max(declared))


def test_vector_count_travels_without_weights(tiny_model_config):
    """The count data loader workers get: the LALM's own, from a pickle of a few kB (no tensor inside)."""
    from toolkit.models.lalm import LALM

    cfg = {**tiny_model_config, "adapter": {"name": "mlp", "stack_frames": 3}}
    model = LALM.from_config(cfg)
    count = pickle.loads(pickle.dumps(model.audio_vector_count()))
    assert len(pickle.dumps(count)) < 20_000 < sum(p.numel() for p in model.parameters()) * 4
    for n in (400, 16_000, WINDOW + 1):
        with torch.no_grad():
            _, lengths = model.encode_waveforms([noise(n, 0)])
        assert count(n) == model.num_audio_vectors(n) == int(lengths[0])
    assert count.seconds(1.0) == count(16_000)
    assert isinstance(count, AudioVectorCount)
