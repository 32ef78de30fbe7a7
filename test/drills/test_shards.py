"""Drills for sharded stages 4 and 6 (issue 15): each reproduces a way shards used to lie, then checks the fix.

Every shard's marker carries the run's identity (config hash, model hash, nshards) and its row counts
(toolkit/shards.py); readers only take complete, consistent sets; reruns skip finished shards without
loading a model and submit only what is missing.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from toolkit.shards import ShardError, count_rows, iter_unique_rows, resolve_files, shard_status

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tiny_model_config, tmp_path_factory):
    from toolkit.models.lalm import LALM

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("export")
    LALM.from_config(tiny_model_config).save_pretrained(out)
    return out


def eval_set(root: Path, n: int = 5) -> Path:
    d = root / "data" / "test"
    d.mkdir(parents=True)
    rows = []
    for i in range(n):
        path = d / f"c{i}.wav"
        sf.write(path, np.random.default_rng(i).standard_normal(4000 + 1000 * i).astype(np.float32) * 0.1, 16000)
        rows.append({"id": f"c{i}", "dataset": "t", "audio": str(path), "text": "hello", "prompt": "What is said?",
                     "reference": "hello", "metric": "wer", "choices": None})
    (d / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def decode_config(root: Path, model_dir: Path, max_new_tokens: int = 3) -> Path:
    cfg = {"decode": {"model_dir": str(model_dir), "eval_sets": [str(root / "data" / "test")],
                      "output_dir": str(root / "decode"), "batch_size": 4, "device": "cpu",
                      "generation": {"max_new_tokens": max_new_tokens}}}
    path = root / f"decode{max_new_tokens}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def decode(config: Path, shard: int, nshards: int, *extra: str) -> None:
    from toolkit.bin.decode import main

    main(["--config", str(config), "--shard", str(shard), "--nshards", str(nshards), *extra])


def launch(stage: str, config: Path, nshards: int, log_dir: Path, *extra: str) -> int:
    from toolkit.bin.launch import main

    return main(["shards", "--stage", stage, "--config", str(config), "--nshards", str(nshards), "--cmd", "local",
                 "--log_dir", str(log_dir), *extra])


def rows_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def subprocess_env(monkeypatch):
    # the launcher's local engine starts `python -m toolkit.bin.decode`: it must import this checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_stale_decode_marker_after_a_settings_change_is_refused_then_redone(exported, tmp_path, subprocess_env):
    """Issue 15: a shard not rerun after a settings change kept its .done.shard1of2; stage 7 scored 1 of 5 rows."""
    from toolkit.bin.score import merged_decode_file

    eval_set(tmp_path)
    old, new = decode_config(tmp_path, exported, 3), decode_config(tmp_path, exported, 2)
    decode(old, 0, 2)
    decode(old, 1, 2)
    set_dir = tmp_path / "decode" / "test"
    assert len(rows_of(merged_decode_file(set_dir))) == 5
    # The setting changes; shard 0 reruns, shard 1 never does (cancelled while queued): its marker is stale.
    decode(new, 0, 2)
    with pytest.raises(ShardError, match="different runs") as err:
        merged_decode_file(set_dir)
    assert ".done.shard1of2" not in str(err.value) or "shards [1]" in str(err.value)
    # The same with shard 1 killed mid-way after the change: its marker is gone, its file holds a partial set.
    (tmp_path / "decode" / ".done.shard1of2").unlink()
    with pytest.raises(ShardError, match=r"shard 1: .*\.done\.shard1of2 is missing"):
        merged_decode_file(set_dir)
    # The fix: the launcher reruns exactly shard 1 (checked from the markers, no model loaded for shard 0).
    logs = tmp_path / "logs"
    assert launch("decode", new, 2, logs) == 0
    assert sorted(p.name for p in logs.iterdir()) == ["stage6.shard1.attempt1.log"]
    merged = rows_of(merged_decode_file(set_dir))
    assert sorted(r["id"] for r in merged) == [f"c{i}" for i in range(5)]
    # and a plain rerun submits nothing
    assert launch("decode", new, 2, logs) == 0 and len(list(logs.iterdir())) == 1


def test_changed_nshards_is_refused_with_the_fix_and_mixed_sets_never_merge(exported, tmp_path, subprocess_env):
    """Issue 15: after --nshards changed, the merge took the count from one file and scored 20 rows for 10 ids."""
    import shutil

    from toolkit.bin.score import merged_decode_file

    eval_set(tmp_path, 6)
    config = decode_config(tmp_path, exported)
    for i in range(2):
        decode(config, i, 2)
    with pytest.raises(ShardError, match=r"holds a 2-shard run .*--nshards 2"):
        decode(config, 0, 3)
    logs = tmp_path / "logs"
    with pytest.raises(ShardError, match=r"--nshards is now 3"):
        launch("decode", config, 3, logs)
    assert not logs.exists()  # refused before anything was submitted
    # Files of two counts side by side (left by a run before this check existed): the merge refuses them.
    set_dir = tmp_path / "decode" / "test"
    shutil.copy(set_dir / "decode.shard0of2.jsonl", set_dir / "decode.shard0of3.jsonl")
    with pytest.raises(ShardError, match="2 different --nshards runs"):
        merged_decode_file(set_dir)
    (set_dir / "decode.shard0of3.jsonl").unlink()
    # The fix the message names: --force decodes again with 3 shards and removes the 2-shard files.
    for i in range(3):
        decode(config, i, 3, "--force")
    assert not list(set_dir.glob("*of2*")) and not (tmp_path / "decode" / ".done.shard0of2").exists()
    ids = [r["id"] for r in rows_of(merged_decode_file(set_dir))]
    assert sorted(ids) == [f"c{i}" for i in range(6)]  # each id once


def test_a_cut_file_under_a_valid_marker_is_not_done(exported, tmp_path):
    eval_set(tmp_path)
    config = decode_config(tmp_path, exported)
    decode(config, 0, 1)
    from toolkit.config import build_section, load_config
    from toolkit.decode.settings import DecodeConfig, shard_identity

    identity = shard_identity(build_section(load_config(config).decode, DecodeConfig, "decode"), 1)
    out = tmp_path / "decode" / "test" / "decode.jsonl"
    assert shard_status(tmp_path / "decode", 0, 1, identity).done
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-2]))
    status = shard_status(tmp_path / "decode", 0, 1, identity)
    assert not status.done and f"has {len(lines) - 2} rows, its marker" in status.reason


def test_decode_rerun_skips_finished_shards_without_loading_a_model(exported, tmp_path, monkeypatch):
    from toolkit.models.lalm import LALM

    eval_set(tmp_path)
    config = decode_config(tmp_path, exported)
    decode(config, 1, 2)

    def no_load(*a, **k):
        raise AssertionError("a model was loaded for a finished shard")

    monkeypatch.setattr(LALM, "from_pretrained", no_load)
    decode(config, 1, 2)  # finished: returns before any model loads
    with pytest.raises(AssertionError, match="model was loaded"):
        decode(config, 0, 2)  # not finished: it does load (the patch is live)


# ------------------------------------------------------------------------------------------ stage 4


def selfgen_setup(root: Path, tiny_dirs: dict, n: int = 6) -> Path:
    for name in ("train", "dev"):
        d = root / "data" / name
        d.mkdir(parents=True)
        ids = [f"{name}{i:02d}" for i in range(n)]
        (d / "wav.scp").write_text("".join(f"{u} /nonexistent/{u}.wav\n" for u in ids))
        (d / "text").write_text("".join(f"{u} hello there\n" for u in ids))
        (d / "seed_descriptions.jsonl").write_text("".join(json.dumps(
            {"id": u, "seed_description": f"[00:00-00:01] hello there (Duration: 1s) {u}"}) + "\n" for u in ids))
    cfg = {"selfgen": {"data_dirs": [str(root / "data" / "train"), str(root / "data" / "dev")],
                       "output_dir": str(root / "dump" / "selfgen"), "batch_size": 4, "instructions": {"seed": 0},
                       "backend": {"name": "hf", "device": "cpu", "generation": {"max_new_tokens": 3},
                                   "llm": {"name": "hf_causal_lm", "model_path": tiny_dirs["tiny-llama"],
                                           "dtype": "float32"}}}}
    path = root / "selfgen.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def selfgen(config: Path, shard: int, nshards: int) -> None:
    from toolkit.bin.selfgen import main

    main(["--config", str(config), "--shard", str(shard), "--nshards", str(nshards)])


def test_selfgen_shards_reach_training_only_as_a_complete_set(tmp_path, tiny_dirs, monkeypatch):
    """Issue 15: the training glob read whatever shard files were there; `./run.sh --nshards 4` then stopped at
    stage 5 because the mini config names dump/selfgen/train.jsonl, which a sharded run never writes."""
    from toolkit.models.llms import LLMS
    from toolkit.train.data import read_rows

    config = selfgen_setup(tmp_path, tiny_dirs)
    out = tmp_path / "dump" / "selfgen"
    selfgen(config, 0, 2)
    # shard 1 is not done: neither the glob nor the plain name trains on half the rows
    for spec in (out / "train*.jsonl", out / "train.jsonl"):
        with pytest.raises(ShardError, match=r"shard 1: .*\.done\.shard1of2 is missing"):
            read_rows(str(spec))
    selfgen(config, 1, 2)
    # finished: the plain name of a sharded run means its shard files, each id once
    # (ids read through the files training takes: the tiny model's answers all hit the token limit, and
    # read_rows keeps those out of supervision)
    plain = [r["id"] for r in iter_unique_rows(resolve_files(str(out / "train.jsonl")))]
    globbed = [r["id"] for r in iter_unique_rows(resolve_files(str(out / "train*.jsonl")))]
    assert sorted(plain) == sorted(globbed) == [f"train{i:02d}-p0" for i in range(6)]
    assert read_rows(str(out / "train.jsonl"))[1].truncated == 6

    def no_load(*a, **k):
        raise AssertionError("the backbone was loaded for a finished shard")

    monkeypatch.setattr(LLMS, "build", no_load)
    selfgen(config, 0, 2)  # both finished: no model loads
    selfgen(config, 1, 2)
    # another shard count of the same config is refused with the fix (answers are never deleted)
    with pytest.raises(ShardError, match=r"Rerun with --nshards 2 .* or delete .*selfgen"):
        selfgen(config, 0, 3)
    # a stray file of another count (a copy, an older run) makes the set ambiguous for training
    (out / "train.shard0of3.jsonl").write_text((out / "train.shard0of2.jsonl").read_text())
    with pytest.raises(ShardError, match="2 different --nshards runs"):
        read_rows(str(out / "train*.jsonl"))


def test_a_swapped_backbone_makes_selfgen_markers_stale(tmp_path, tiny_dirs):
    from toolkit.selfgen.settings import SelfGenConfig, shard_identity
    from toolkit.config import build_section, load_config

    config = selfgen_setup(tmp_path, tiny_dirs)
    selfgen(config, 0, 1)
    out = tmp_path / "dump" / "selfgen"
    same = shard_identity(build_section(load_config(config).selfgen, SelfGenConfig, "selfgen"), 1)
    assert shard_status(out, 0, 1, same).done
    on_gpu = shard_identity(build_section(load_config(config, ["selfgen.backend.device=cuda"]).selfgen,
                                          SelfGenConfig, "selfgen"), 1)
    assert on_gpu == same  # where it runs does not change an answer's identity
    longer = shard_identity(build_section(load_config(config, ["selfgen.backend.generation.max_new_tokens=9"]).selfgen,
                                          SelfGenConfig, "selfgen"), 1)
    status = shard_status(out, 0, 1, longer)
    assert not status.done and "stale marker" in status.reason and "config_sha256" in status.reason
    assert count_rows(out / "train.jsonl") == 6
