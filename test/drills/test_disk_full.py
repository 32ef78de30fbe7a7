"""Fault drill: the disk fills up while training writes a checkpoint.

The kernel's ``/dev/full`` answers every write with ENOSPC, a real full disk: the checkpoint's ``.tmp`` path
is made a link to it (in training, during step 2, after the start-up clean-up of stale ``.tmp`` files).
Before, training died with a bare ``OSError: [Errno 28]`` traceback and left a partial
``step<N>.ckpt.tmp``; now it prints one paragraph naming the file and the fix, leaves no partial file, keeps
the checkpoints already written, and the same command resumes from them once there is room again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import test_train_fakes as fakes

DEV_FULL = Path("/dev/full")

LAUNCHER = """import os, sys
sys.path.insert(0, {testdir!r})
import test_train_fakes  # registers the fake encoder/adapter
from toolkit.train.module import LALMTrainingModule

step = LALMTrainingModule.training_step
calls = [0]

def filling_up(self, batch, batch_idx):
    calls[0] += 1
    if calls[0] == 2:  # the disk is full from step 2 on: step 2's checkpoint cannot be written
        os.symlink("/dev/full", {tmp!r})
    return step(self, batch, batch_idx)

LALMTrainingModule.training_step = filling_up
from toolkit.bin.train import main
sys.exit(main())
"""
pytestmark = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs Linux's /dev/full to make a real ENOSPC")


def test_write_checkpoint_on_a_full_disk_leaves_nothing(tmp_path: Path):
    from toolkit.train.checkpoint import CheckpointError, write_checkpoint

    target = tmp_path / "step3.ckpt"
    (tmp_path / "step3.ckpt.tmp").symlink_to(DEV_FULL)
    with pytest.raises(CheckpointError) as err:
        write_checkpoint({"w": torch.zeros(4096)}, target)
    assert f"cannot write checkpoint {target}: the disk is full" in str(err.value)
    assert "No space left on device" in str(err.value)
    assert sorted(os.listdir(tmp_path)) == []  # neither the target nor a .tmp

    write_checkpoint({"w": torch.ones(3)}, target)  # room again: a normal write
    assert torch.load(target, weights_only=True)["w"].tolist() == [1.0, 1.0, 1.0]
    assert sorted(os.listdir(tmp_path)) == ["step3.ckpt"]


def test_a_failed_write_of_any_kind_removes_its_tmp(tmp_path: Path):
    from toolkit.train.checkpoint import write_checkpoint

    with pytest.raises(Exception):
        write_checkpoint({"unpicklable": lambda: None}, tmp_path / "last.ckpt")
    assert os.listdir(tmp_path) == []


def test_training_on_a_full_disk_says_so_and_resumes_later(tmp_path: Path):
    from toolkit.bin.train import main

    corpus = fakes.make_corpus(tmp_path, n_train=8, n_dev=2)
    cfg = fakes.write_config(tmp_path / "run", corpus, train={"max_steps": 3, "num_sanity_val_steps": 0})
    ckpts = tmp_path / "run" / "exp" / "checkpoints"
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER.format(testdir=str(Path(fakes.__file__).parent), tmp=str(ckpts / "step2.ckpt.tmp")))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DESTA_DEBUG", None)
    proc = subprocess.run([sys.executable, str(launcher), "--config", str(cfg)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"error (CheckpointError): cannot write checkpoint {ckpts / 'step2.ckpt'}: the disk is full" in proc.stderr
    assert "Nothing partial was left" in proc.stderr and "rerun the same command" in proc.stderr
    assert sorted(os.listdir(ckpts)) == ["last.ckpt", "step1.ckpt"]  # what was written before is intact
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 1

    assert main(["--config", str(cfg)]) == 0  # room again: the same command resumes and finishes
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 3
    assert not list(ckpts.glob("*.tmp"))
