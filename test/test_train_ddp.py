"""``strategy=ddp, devices=2, accelerator=cpu`` through the CLI (Lightning's subprocess launcher, gloo).

One training row makes its batch's loss NaN on one rank only: both ranks must skip that batch
together (no hang), count it, and finish.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import test_train_fakes as fakes


def test_ddp_two_cpu_processes_train_and_skip_together(tmp_path: Path):
    corpus = fakes.make_corpus(tmp_path, n_train=15, n_dev=4)
    sf.write(Path(corpus["audio_root"]) / "nan.wav", np.random.default_rng(0).standard_normal(4800).astype(np.float32) * 0.1, 16000)
    row = json.loads(Path(corpus["train"]).read_text().splitlines()[0])
    row["id"], row["messages"][0]["audios"][0]["audio"] = "nanrow-p0", "nan.wav"
    with open(corpus["train"], "a") as f:
        f.write(json.dumps(row) + "\n")  # 16 rows, batch 4 per device x 2 devices: 2 steps per epoch
    cfg = fakes.write_config(tmp_path, corpus, adapter={"nan_on_frames": 15},
                             train={"strategy": "ddp", "devices": 2, "max_epochs": 2, "max_steps": -1, "val_check_interval": 1.0})
    launcher = fakes.write_launcher(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(launcher), "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stderr
    assert "global batch = 4 per device x 2 devices x 1 accumulation = 8 samples per optimizer step" in log
    assert "[rank 1]" in log  # the second rank ran (its warnings carry its rank)
    exp = tmp_path / "exp"
    info = json.loads((exp / "model" / "model_info.json").read_text())["training"]
    assert info["global_step"] == 4 and info["skipped_batches"] == 2, info
    assert all(torch.isfinite(w).all() for w in fakes.trainable_weights(exp).values())
    assert (exp / ".done").is_file()
    # each rank's RNG states are saved (ranks draw different amounts), and each rank gets its own back
    from toolkit.train.module import rng_states_for_rank

    saved = torch.load(exp / "checkpoints" / "last.ckpt", weights_only=True)["desta"]
    per_rank = saved["rng_per_rank"]
    assert len(per_rank) == 2
    assert rng_states_for_rank(saved, 1, 2) is per_rank[1] and rng_states_for_rank(saved, 0, 2) is per_rank[0]
    assert rng_states_for_rank(saved, 2, 4) is per_rank[0]  # another world size: rank 0's, with a warning
    assert rng_states_for_rank({"rng": per_rank[1]}, 0, 1) is per_rank[1]  # checkpoints from before per-rank states
