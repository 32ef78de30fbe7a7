"""Fault drill: kill training anywhere, resume, and end with the uninterrupted run's weights bit for bit.

The real stack at tiny size: random-init Whisper (tapped states from the feature cache), the Q-Former with
dropout 0.1, the tiny Llama with SmolLM2's tokenizer; two truncated rows are excluded, validation (loss +
one generation) runs every 2 steps, a data-loader worker process collates, and two ``step<N>.ckpt`` are kept.
12 rows in batches of 4 give 3 batches an epoch; the run trains 7 steps (into epoch 2).

The killed run dies (``os._exit(137)``: no clean-up, like ``kill -9``) four times, each at a place that
once broke resume:

1. in training batch 4: the checkpoint is step 3, the last batch of epoch 0, so the restart begins epoch 1
   (it used to replay epoch 0's order: its loader iterator existed before Lightning's ``set_epoch``);
2. in the first validation of the restarted process: the checkpoint is step 4, mid-epoch 1 (Lightning never
   called the batch sampler's ``set_epoch``, so epoch 1 repeated epoch 0 in the uninterrupted run while the
   resumed one reshuffled: max abs diff 4.9e-3);
3. in its 3rd training batch (step 7): the checkpoint is step 6, the end of epoch 1, validated;
4. then ``last.ckpt`` is torn (cut to half) and a partial ``.tmp`` is left beside it: the last restart names
   the torn file, moves it aside, removes the ``.tmp`` and resumes from ``step6.ckpt``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import test_train_fakes as fakes
from toolkit.config import cache_dir

MAX_STEPS = 7

LAUNCHER = """import os, sys
from toolkit.train.module import LALMTrainingModule

# $DRILL_CRASH = "train:N" or "val:N": die, like kill -9, in this process's N-th training/validation step.
kind, _, n = os.environ.get("DRILL_CRASH", ":0").partition(":")
calls = {"train": 0, "val": 0}

def dying(name, step):
    def wrapped(self, batch, batch_idx):
        calls[name] += 1
        if name == kind and calls[name] == int(n):
            os._exit(137)
        return step(self, batch, batch_idx)
    return wrapped

LALMTrainingModule.training_step = dying("train", LALMTrainingModule.training_step)
LALMTrainingModule.validation_step = dying("val", LALMTrainingModule.validation_step)
from toolkit.bin.train import main
sys.exit(main())
"""


def write_config(root: Path, corpus: dict[str, str], feats: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "tiny.yaml"
    path.write_text(f"""defaults:
  - encoder: tiny_whisper
  - adapter: qformer_tiny
  - llm: tiny_llama
  - transcriber: given
lalm: {{max_seq_len: 160}}
generation: {{max_new_tokens: 4}}
train:
  output_dir: {root / 'exp'}
  data: {{train_jsonl: {corpus['train']}, dev_jsonl: {corpus['dev']}, audio_root: {corpus['audio_root']},
          feature_cache: {feats}, bucket_multiplier: 2}}
  accelerator: cpu
  batch_size: 4
  max_steps: {MAX_STEPS}
  lr: 1.0e-2
  warmup_steps: 2
  num_workers: 1
  val_check_interval: 2
  limit_val_batches: 1
  checkpoint_every_n_steps: 1
  keep_checkpoints: 2
  num_sanity_val_steps: 1
  num_val_generations: 1
  val_generation_max_new_tokens: 4
  log_every_n_steps: 1
  progress_bar: false
  torch_threads: 1
""")
    return path


def run(launcher: Path, cfg: Path, crash: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DRILL_CRASH": crash, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(launcher), "--config", str(cfg)], env=env, capture_output=True,
                          text=True, timeout=600)


def step_of(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["global_step"])


def test_killed_four_times_real_stack_resumes_bit_for_bit(tmp_path: Path):
    for asset in ("tiny-whisper", "tiny-llama"):
        if not (cache_dir() / "models" / asset / "config.json").is_file():
            pytest.fail(f"{asset} asset missing: run python tools/prepare_assets.py")
    from toolkit.bin.cache_features import main as cache_main
    from toolkit.bin.train import main

    audio = {"audio": "train_000.wav", "text": ""}
    truncated = [{"id": f"cut{i}-p0", "dataset": "fake", "prompt": "q", "response": "cut off", "finish_reason": "length",
                  "messages": [{"role": "user", "content": "<|AUDIO|>\nq", "audios": [audio]}]} for i in range(2)]
    corpus = fakes.make_corpus(tmp_path, n_train=12, n_dev=3, extra_rows=truncated)
    feats = tmp_path / "feats"
    straight = write_config(tmp_path / "straight", corpus, feats)
    assert cache_main(["--config", str(straight)]) == 0
    assert main(["--config", str(straight)]) == 0
    expected = fakes.trainable_weights(tmp_path / "straight" / "exp")

    killed = write_config(tmp_path / "killed", corpus, feats)
    ckpts = tmp_path / "killed" / "exp" / "checkpoints"
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    logs = []
    for crash, step in (("train:4", 3), ("val:1", 4), ("train:3", 6)):
        proc = run(launcher, killed, crash)
        logs.append(proc.stderr)
        assert proc.returncode == 137, proc.stderr[-3000:]
        assert step_of(ckpts / "last.ckpt") == step, crash
    assert "resuming at the start of epoch 1" in logs[1]
    assert "resuming epoch 1 at batch 1 of 3" in logs[2]
    assert sorted(p.name for p in ckpts.glob("step*.ckpt")) == ["step5.ckpt", "step6.ckpt"]  # keep_checkpoints: 2

    data = (ckpts / "last.ckpt").read_bytes()
    (ckpts / "last.ckpt").write_bytes(data[: len(data) // 2])  # torn: power lost before the data reached the disk
    (ckpts / "step7.ckpt.tmp").write_bytes(data[:100])  # a write a kill interrupted
    proc = run(launcher, killed, "")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"checkpoint {ckpts / 'last.ckpt'} is torn or unreadable" in proc.stderr
    assert f"resuming from {ckpts / 'step6.ckpt'}" in proc.stderr
    assert f"removing {ckpts / 'step7.ckpt.tmp'}" in proc.stderr
    assert (ckpts / "last.ckpt.torn").read_bytes() == data[: len(data) // 2]  # kept for inspection, not deleted
    assert not list(ckpts.glob("*.tmp"))
    assert step_of(ckpts / "last.ckpt") == MAX_STEPS

    resumed = fakes.trainable_weights(tmp_path / "killed" / "exp")
    assert resumed.keys() == expected.keys()
    diff = max((resumed[k] - expected[k]).abs().max().item() for k in expected)
    assert diff == 0.0, f"max abs diff {diff} between the killed-and-resumed and the uninterrupted run"
