"""Data mixing: weighted sources, deterministic resumable sampling, per-source validation losses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

import test_train_fakes as fakes
from toolkit.train.mixing import Mixture, WeightedMixSampler, check_sources, mix_counts


def absolute_audio(corpus: dict[str, str], dataset: str) -> dict[str, str]:
    """Rewrite a fake corpus's rows with absolute audio paths and their own ids, so two corpora share no names."""
    for split in ("train", "dev"):
        rows = [json.loads(line) for line in Path(corpus[split]).read_text().splitlines()]
        for r in rows:
            r["id"], r["dataset"] = f"{dataset}-{r['id']}", dataset
            for a in r["messages"][0]["audios"]:
                a["audio"] = str(Path(corpus["audio_root"]) / a["audio"])
        Path(corpus[split]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return corpus


def mix_config(root: Path, a: dict, b: dict, train: dict) -> Path:
    cfg_path = fakes.write_config(root, a, train=train)
    cfg = yaml.safe_load(cfg_path.read_text())
    data = cfg["train"]["data"]
    data.pop("train_jsonl"), data.pop("dev_jsonl"), data.pop("audio_root")
    data["sources"] = [{"name": "big", "path": a["train"], "weight": 3, "dev": a["dev"]},
                       {"name": "small", "path": b["train"], "weight": 1, "dev": b["dev"]}]
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg_path


def test_mix_counts_follow_the_weights_and_add_up():
    assert mix_counts([12, 12], [3, 1], 24) == [18, 6]
    assert mix_counts([5, 7, 9], [1, 1, 1], 21) == [7, 7, 7]
    assert sum(mix_counts([3, 4], [2, 1], 7)) == 7


def test_sampler_is_a_pure_function_of_seed_and_epoch_and_repeats_a_small_source_last():
    mixture = Mixture(samples=[fakes_sample(i) for i in range(16)], names=["a", "b"], offsets=[0, 12], sizes=[12, 4],
                      weights=[1.0, 3.0], rows={"a": 12, "b": 4})
    sampler = WeightedMixSampler(mixture, batch_size=4, seed=5)
    epoch0 = sampler.all_batches(0)
    assert epoch0 == WeightedMixSampler(mixture, batch_size=4, seed=5).all_batches(0)  # same seed: same batches
    assert epoch0 != sampler.all_batches(1) and epoch0 != WeightedMixSampler(mixture, batch_size=4, seed=6).all_batches(0)
    drawn = Counter(i for b in epoch0 for i in b)
    per_source = Counter("a" if i < 12 else "b" for i in drawn.elements())
    assert per_source == {"a": 4, "b": 12}  # 1:3 of 16
    assert all(drawn[i] == 3 for i in range(12, 16))  # the small source: every row thrice, none four times
    a_rows = [i for i in drawn if i < 12]
    assert len(a_rows) == 4 and set(a_rows).isdisjoint(i for b in sampler.all_batches(1) for i in b if i < 12)


def fakes_sample(i: int):
    from toolkit.train.data import Sample

    return Sample(id=str(i), messages=[], response="", audios=[], duration=1.0 + i % 3, est_tokens=10)


def test_bad_sources_are_refused_naming_the_entry():
    problems = check_sources([{"path": "a.jsonl", "weight": 0}, {"name": "x", "path": "b.jsonl", "wieght": 1},
                              {"name": "x", "path": "c.jsonl"}])
    assert any("sources[0].weight: must be a number > 0" in p for p in problems)
    assert any("sources[1]: unknown key(s) ['wieght']" in p for p in problems)
    assert any("sources[2].name: 'x' is used twice" in p for p in problems)
    assert check_sources([]) and check_sources([{"path": "a"}]) == []


def test_two_source_mix_trains_resumes_exactly_and_logs_per_source_validation(tmp_path: Path):
    from toolkit.bin.train import main
    from toolkit.train.plots import read_scalars

    a = absolute_audio(fakes.make_corpus(tmp_path / "a", n_train=9, n_dev=2, seed=0), "big")
    b = absolute_audio(fakes.make_corpus(tmp_path / "b", n_train=3, n_dev=2, seed=1), "small")
    settings = {"max_steps": 6, "val_check_interval": 2, "warmup_steps": 2, "lr": 1e-2, "limit_val_batches": 1.0}
    straight = mix_config(tmp_path / "straight", a, b, settings)
    assert main(["--config", str(straight)]) == 0
    exp = tmp_path / "straight" / "exp"
    expected = fakes.trainable_weights(exp)
    scalars = read_scalars(exp / "tb", ("val/loss", "val/loss/big", "val/loss/small"))
    assert scalars["val/loss/big"] and scalars["val/loss/small"] and scalars["val/loss/big"][0][0] == 0
    info = json.loads((exp / "model" / "model_info.json").read_text())
    assert info["training"]["data_rows"] == {"big": 9, "small": 3}

    killed = mix_config(tmp_path / "killed", a, b, settings)
    launcher = fakes.write_launcher(tmp_path)
    run = lambda crash: subprocess.run([sys.executable, str(launcher), "--config", str(killed)], capture_output=True, text=True,  # noqa: E731
                                       timeout=180, env={**os.environ, "DESTA_TEST_CRASH_AT_TRAIN_CALL": str(crash)})
    proc = run(3)
    assert proc.returncode == 137, proc.stderr[-3000:]
    proc = run(0)
    assert proc.returncode == 0 and "resuming from" in proc.stderr, proc.stderr[-3000:]
    assert "training mix: big: 9 rows kept, weight 3 -> 9 samples per epoch (75.0 %); small: 3 rows kept, weight 1 -> 3" in proc.stderr
    resumed = fakes.trainable_weights(tmp_path / "killed" / "exp")
    for k in expected:
        torch.testing.assert_close(resumed[k], expected[k], rtol=0, atol=0, msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("both", [True, False])
def test_train_jsonl_or_sources_exactly_one(tmp_path: Path, both: bool):
    from toolkit.config import ConfigError
    from toolkit.bin.train import main

    a = fakes.make_corpus(tmp_path, n_train=2, n_dev=1)
    cfg_path = fakes.write_config(tmp_path / "c", a)
    cfg = yaml.safe_load(cfg_path.read_text())
    if both:
        cfg["train"]["data"]["sources"] = [{"path": a["train"]}]
    else:
        cfg["train"]["data"].pop("train_jsonl")
    cfg_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="both set" if both else "train.data.sources"):
        main(["--config", str(cfg_path)])
