"""Tiny fake encoder/adapter and a tiny AQA corpus for the training tests (importable helpers).

The fakes are registered under ``train_fake_*`` names; a subprocess run (DDP, kill-and-resume)
imports this module through a small launcher script so its ranks see them too.  The LLM is the
real-tokenizer tiny Llama from the asset cache.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from toolkit.config import cache_dir
from toolkit.models.adapters.base import ADAPTERS, AudioAdapter
from toolkit.models.encoders.base import ENCODERS, AudioEncoder, EncoderOutput

HOP = 320  # 20 ms frames at 16 kHz


class FakeFeatures:
    """Picklable feature extractor: mean and std of each 20 ms frame."""

    def __call__(self, waves: list[np.ndarray]) -> dict[str, torch.Tensor]:
        lengths = [max(1, len(w) // HOP) for w in waves]
        feats = torch.zeros(len(waves), max(lengths), 2)
        for i, w in enumerate(waves):
            frames = np.resize(np.asarray(w, dtype=np.float32), lengths[i] * HOP).reshape(lengths[i], HOP)
            feats[i, : lengths[i], 0] = torch.from_numpy(frames.mean(1))
            feats[i, : lengths[i], 1] = torch.from_numpy(frames.std(1))
        return {"features": feats, "feature_lengths": torch.tensor(lengths)}


if "train_fake_encoder" not in ENCODERS:

    @ENCODERS.register("train_fake_encoder")
    class FakeEncoder(AudioEncoder):
        """Frozen random projection of frame statistics, two 'taps'."""

        output_size = 16
        num_tapped = 2
        frame_rate = 50.0

        def __init__(self, seed: int = 0):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.proj = nn.Linear(2, 16)
            with torch.no_grad():
                self.proj.weight.copy_(torch.randn(16, 2, generator=g) * 4)
                self.proj.bias.copy_(torch.randn(16, generator=g))
            for p in self.parameters():
                p.requires_grad_(False)

        def feature_extractor(self) -> FakeFeatures:
            return FakeFeatures()

        def num_frames(self, num_samples: int) -> int:
            return max(1, int(num_samples) // HOP)

        def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> EncoderOutput:
            h = torch.tanh(self.proj(features))
            return EncoderOutput([h, h * 0.5 + 0.1], feature_lengths)

    @ADAPTERS.register("train_fake_adapter")
    class FakeAdapter(AudioAdapter):
        """Frame adapter: mean-pools ``stride`` frames -> one vector (count grows with duration), with dropout.

        ``nan_on_frames``: a clip with exactly that many frames makes the output NaN (tests the skip).
        ``$DESTA_TEST_CRASH_AT_TRAIN_CALL=N``: the process dies (``os._exit(137)``, no clean-up, like a
        kill) in its N-th training-mode forward, i.e. during training batch N of this process.
        """

        def __init__(self, input_size: int, num_inputs: int, output_size: int, stride: int = 25,
                     dropout: float = 0.1, nan_on_frames: int | None = None):
            super().__init__()
            self.stride, self.nan_on_frames = stride, nan_on_frames
            self.layer_weights = nn.Parameter(torch.zeros(num_inputs))
            self.proj = nn.Sequential(nn.Linear(input_size, 32), nn.GELU(), nn.Dropout(dropout), nn.Linear(32, output_size))
            self.train_calls = 0

        def num_vectors(self, num_frames: int) -> int:
            return max(1, -(-int(num_frames) // self.stride))

        def forward(self, hidden_states: list[torch.Tensor], lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if self.training:
                self.train_calls += 1
                if self.train_calls == int(os.environ.get("DESTA_TEST_CRASH_AT_TRAIN_CALL", "0")):
                    os._exit(137)
            w = torch.softmax(self.layer_weights, 0)
            h = sum(w[i] * s for i, s in enumerate(hidden_states))
            b, t, d = h.shape
            n = math.ceil(t / self.stride)
            h = nn.functional.pad(h, (0, 0, 0, n * self.stride - t)).view(b, n, self.stride, d).mean(2)
            out = self.proj(h)
            counts = torch.clamp((lengths + self.stride - 1) // self.stride, min=1)
            if self.nan_on_frames is not None and bool((lengths == self.nan_on_frames).any()):
                out = out * float("nan")
            return out, counts


def tiny_llama_path() -> str:
    for p in (cache_dir() / "models" / "tiny-llama", Path("/tmp/dev/tiny-llama")):
        if (p / "config.json").is_file():
            return str(p)
    pytest.fail("tiny-llama asset missing: run python tools/prepare_assets.py")


WORDS = "cat dog bird rain music speech piano siren engine crowd".split()


def make_corpus(root: Path, n_train: int = 24, n_dev: int = 4, seed: int = 0, extra_rows: list[dict] | None = None) -> dict[str, str]:
    """Noise clips of 0.4-2.4 s whose answer names the clip's 'class' (its loudness), as AQA rows."""
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = []
        for i in range(n):
            cls = int(rng.integers(0, 3))
            dur = float(rng.choice([0.4, 0.8, 1.2, 1.6, 2.0, 2.4]))
            wave = (rng.standard_normal(int(16000 * dur)) * (0.05, 0.3, 0.9)[cls]).astype(np.float32)
            name = f"{split}_{i:03d}.wav"
            sf.write(audio / name, wave, 16000)
            label = WORDS[cls]
            rows.append({"id": f"{split}{i:03d}-p0", "dataset": "fake", "seed_description": f"(Audio category: {label})",
                         "prompt": "What sound is this?", "response": f"This is the sound of a {label}.",
                         "finish_reason": "stop", "label": label,
                         "messages": [{"role": "user", "content": "<|AUDIO|>\nWhat sound is this?",
                                       "audios": [{"audio": name, "text": ""}]},
                                      {"role": "assistant", "content": f"This is the sound of a {label}."}]})
        if split == "train" and extra_rows:
            rows += extra_rows
        path = root / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths[split] = str(path)
    paths["audio_root"] = str(audio)
    return paths


def write_config(root: Path, corpus: dict[str, str], train: dict | None = None, adapter: dict | None = None,
                 data: dict | None = None) -> Path:
    """A complete training YAML with the fakes and the tiny Llama."""
    from omegaconf import OmegaConf

    cfg = {
        "encoder": {"name": "train_fake_encoder"},
        "adapter": {"name": "train_fake_adapter", **(adapter or {})},
        "llm": {"name": "hf_causal_lm", "model_path": tiny_llama_path(), "dtype": "float32"},
        "transcriber": {"name": "given", "missing": "empty"},
        "lalm": {"max_seq_len": 128},
        "generation": {"max_new_tokens": 8},
        "train": {
            "output_dir": str(root / "exp"),
            "data": {"train_jsonl": corpus["train"], "dev_jsonl": corpus["dev"], "audio_root": corpus["audio_root"],
                     "bucket_multiplier": 4, **(data or {})},
            "accelerator": "cpu", "devices": 1, "batch_size": 4, "max_steps": 4, "lr": 3e-3, "warmup_steps": 0,
            "num_workers": 0, "seed": 0, "log_every_n_steps": 1, "checkpoint_every_n_steps": 1,
            "num_sanity_val_steps": 1, "num_val_generations": 1, "val_generation_max_new_tokens": 4,
            "limit_val_batches": 1, "val_check_interval": 1.0, "progress_bar": False, "torch_threads": 1,
            **(train or {}),
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "train.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return path


LAUNCHER = """import sys
sys.path.insert(0, {testdir!r})
import test_train_fakes  # registers the fake encoder/adapter in every rank
from toolkit.bin.train import main
sys.exit(main())
"""


def write_launcher(root: Path) -> Path:
    """A script that registers the fakes and runs the training CLI (Lightning re-runs it for each DDP rank)."""
    path = root / "run_train.py"
    path.write_text(LAUNCHER.format(testdir=str(Path(__file__).resolve().parent)))
    return path


def trainable_weights(exp: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(exp / "model" / "model.safetensors"))


def test_fake_adapter_counts_grow_with_duration():
    enc = ENCODERS.build({"name": "train_fake_encoder"})
    ad = ADAPTERS.build({"name": "train_fake_adapter"}, input_size=16, num_inputs=2, output_size=8)
    out = enc.encode_waveforms([np.zeros(16000, np.float32), np.zeros(48000, np.float32)])
    vecs, counts = ad(out.hidden_states, out.lengths)
    assert counts.tolist() == [2, 6] and vecs.shape == (2, 6, 8)
    assert sys.modules[__name__].FakeFeatures  # picklable helper lives at module level
