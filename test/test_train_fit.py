"""Training stage end to end on tiny models (CPU): fit, export, skip non-finite, config refusals, feature cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import test_train_fakes as fakes
from toolkit.config import ConfigError, load_config
from toolkit.models.lalm import LALM


def _batch_loss(model: LALM, corpus: dict, n: int = 8) -> float:
    from toolkit.train.data import AQADataset, Collator, read_rows

    samples, _ = read_rows(corpus["train"], audio_root=corpus["audio_root"])
    coll = Collator(model.formatter, model.encoder.feature_extractor(), model.max_seq_len, model.audio_vector_count())
    ds = AQADataset(samples)
    batch = coll([ds[i] for i in range(n)])
    model.eval()
    with torch.no_grad():
        return model(conversations=batch["conversations"], features=batch["features"])["loss"].item()


def test_cpu_fit_lowers_loss_and_exports(tmp_path: Path):
    from toolkit.bin.train import main

    corpus = fakes.make_corpus(tmp_path, n_train=24, n_dev=4)
    cfg_path = fakes.write_config(tmp_path, corpus, train={"max_steps": 12, "lr": 1e-2, "val_check_interval": 6})
    before = _batch_loss(LALM.from_config(load_config(cfg_path)), corpus)  # same seed-0 init as the run
    assert main(["--config", str(cfg_path)]) == 0
    exp = tmp_path / "exp"
    assert (exp / ".done").is_file() and (exp / "config.yaml").is_file() and (exp / "checkpoints" / "last.ckpt").is_file()
    model = LALM.from_pretrained(exp / "model")
    after = _batch_loss(model, corpus)
    assert after < before - 0.01, (before, after)  # a random tiny LLM has near-uniform logits: the reachable drop is small
    # checkpoint: trainable weights only (+ optimizer/scheduler/loop/RNG state and the resolved config)
    ckpt = torch.load(exp / "checkpoints" / "last.ckpt", weights_only=False)
    assert set(ckpt["state_dict"]) == {f"model.{k}" for k in model.trainable_state_dict()}
    assert ckpt["global_step"] == 12 and ckpt["optimizer_states"] and ckpt["lr_schedulers"]
    assert ckpt["desta"]["config"]["train"]["max_steps"] == 12 and len(ckpt["desta"]["rng_per_rank"]) == 1
    # TensorBoard got the training scalars, validation loss and generation text
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ev = EventAccumulator(str(exp / "tb"), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    scalars = set(ev.Tags()["scalars"])
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "train/audio_seconds_per_s",
                "train/tokens_per_s", "train/peak_memory_mib", "val/loss", "val/consecutive_words_accuracy"):
        assert tag in scalars, (tag, sorted(scalars))
    assert any("generations" in t for t in ev.Tags()["tensors"])
    val = [e.value for e in ev.Scalars("val/loss")]
    assert len(val) >= 2 and val[-1] < val[0]
    # a finished run is skipped on rerun: its done marker is the stage's one record ...
    weights = exp / "model" / "model.safetensors"
    weights.unlink()
    assert main(["--config", str(cfg_path)]) == 0
    assert not weights.exists()
    # ... so deleting it runs the stage again (resuming from last.ckpt: no step left, the model is rewritten)
    (exp / ".done").unlink()
    assert main(["--config", str(cfg_path)]) == 0
    assert weights.is_file() and (exp / ".done").is_file()
    assert torch.load(exp / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 12


def test_nonfinite_batch_is_skipped_and_counted(tmp_path: Path, caplog):
    from toolkit.bin.train import main

    # one extra 0.3 s clip (15 frames): the fake adapter turns any batch holding it into NaN
    extra = fakes.make_corpus(tmp_path / "x", n_train=1, n_dev=0)
    wave = np.random.default_rng(0).standard_normal(4800).astype(np.float32) * 0.1
    import soundfile as sf

    corpus = fakes.make_corpus(tmp_path, n_train=11, n_dev=2)
    sf.write(Path(corpus["audio_root"]) / "nan.wav", wave, 16000)
    row = json.loads(Path(extra["train"]).read_text().splitlines()[0])
    row["id"], row["messages"][0]["audios"][0]["audio"] = "nanrow-p0", "nan.wav"
    with open(corpus["train"], "a") as f:
        f.write(json.dumps(row) + "\n")
    cfg_path = fakes.write_config(tmp_path, corpus, adapter={"nan_on_frames": 15}, train={"max_epochs": 2, "max_steps": -1})
    with caplog.at_level("WARNING"):
        assert main(["--config", str(cfg_path)]) == 0
    info = json.loads((tmp_path / "exp" / "model" / "model_info.json").read_text())["training"]
    assert info["skipped_batches"] == 2  # once per epoch
    # 3 batches per epoch: Lightning still counts the skipped batch as a (no-op) step, but AdamW saw no
    # gradient there, so its per-parameter step count shows only the 4 real updates
    assert info["global_step"] == 6
    ckpt = torch.load(tmp_path / "exp" / "checkpoints" / "last.ckpt", weights_only=False)
    assert {int(s["step"]) for s in ckpt["optimizer_states"][0]["state"].values()} == {4}
    assert "nanrow-p0" in caplog.text and "skipping batch" in caplog.text
    weights = fakes.trainable_weights(tmp_path / "exp")
    assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize("override,message", [
    ("train.strategy=ddp_spawn", "use train.strategy=ddp"),
    ("train.precision=16-mixed", "train.precision=bf16-mixed or 32-true"),
    ("train.strategy=fsdp", "train.strategy=fsdp needs GPUs"),
    ("train.global_batch_size=6", "not a multiple of train.batch_size"),
    ("train.accumulate_grad_batches=3", "set only one of them"),
    ("train.max_steps=-1", "train.max_steps and train.max_epochs are both unset"),
    ("train.bogus=1", "train.bogus: unknown key"),
    ("train.data.shuffle=1", "train.data.shuffle: unknown key"),
])
def test_incompatible_settings_are_refused(tmp_path: Path, override: str, message: str):
    from toolkit.bin.train import main

    corpus = {"train": "t.jsonl", "dev": "d.jsonl", "audio_root": "."}
    cfg_path = fakes.write_config(tmp_path, corpus, train={"global_batch_size": 8} if "accumulate" in override else None)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        main(["--config", str(cfg_path), override])


def test_deepspeed_missing_names_the_extra(tmp_path: Path):
    import importlib.util

    from toolkit.bin.train import check_strategy_backend

    if importlib.util.find_spec("deepspeed") is not None:
        check_strategy_backend("deepspeed_stage_2")  # installed: nothing to refuse
        return
    with pytest.raises(ImportError, match=r"desta-toolkit\[deepspeed\]"):
        check_strategy_backend("deepspeed_stage_3")


def test_global_batch_size_sets_accumulation(tmp_path: Path, caplog):
    from toolkit.train.settings import TrainSettings

    s = TrainSettings(output_dir="x", data={"train_jsonl": "t"}, batch_size=4, devices=2, global_batch_size=32, max_steps=1)
    assert s.problems() == [] and s.accumulation() == 4
    s1 = TrainSettings(output_dir="x", data={"train_jsonl": "t"}, batch_size=4, devices=1, global_batch_size=32, max_steps=1)
    assert s1.accumulation() == 8  # same global batch on one device


def test_feature_cache_matches_audio_path_and_trains(tmp_path: Path, caplog):
    from toolkit.bin.cache_features import main as cache_main
    from toolkit.bin.train import main
    from toolkit.train.data import AQADataset, Collator, FeatureCache, read_rows

    corpus = fakes.make_corpus(tmp_path, n_train=8, n_dev=2)
    broken = Path(corpus["audio_root"]) / "train_005.wav"
    broken.write_bytes(b"garbage")
    cache = tmp_path / "feats"
    cfg_path = fakes.write_config(tmp_path, corpus, data={"feature_cache": str(cache)}, train={"max_steps": 3})
    assert cache_main(["--config", str(cfg_path), "--batch_size", "3"]) == 0
    info = json.loads((cache / "cache_info.json").read_text())
    assert info["num_tapped"] == 2 and info["audios"] == 9 and info["bad_audios"] == 1
    assert str(broken) in (cache / "bad_audio.txt").read_text()

    # the cached path gives the same loss as the audio path (fp16 storage: close, not equal)
    from toolkit.models.encoders.base import EncoderOutput

    model = LALM.from_config(load_config(cfg_path)).eval()
    samples, _ = read_rows(corpus["train"], audio_root=corpus["audio_root"])
    vc = model.audio_vector_count()
    coll = Collator(model.formatter, model.encoder.feature_extractor(), model.max_seq_len, vc, num_tapped=2)
    audio_batch = coll([AQADataset(samples)[i] for i in range(4)])
    cached_batch = coll([AQADataset(samples, cache=FeatureCache(cache))[i] for i in range(4)])
    assert audio_batch["features"] is not None and cached_batch["hidden_states"] is not None
    with torch.no_grad():
        a = model(conversations=audio_batch["conversations"], features=audio_batch["features"])["loss"].item()
        enc = EncoderOutput(cached_batch["hidden_states"], cached_batch["lengths"])
        c = model(conversations=cached_batch["conversations"], encoder_output=enc)["loss"].item()
    assert math.isclose(a, c, rel_tol=1e-3), (a, c)

    # training reads the cache; the unreadable clip is skipped and listed
    with caplog.at_level("INFO"):
        assert main(["--config", str(cfg_path)]) == 0
    assert "train set reads cached encoder states" in caplog.text and "dev set reads cached encoder states" in caplog.text
    assert str(broken) in (tmp_path / "exp" / "bad_audio.txt").read_text()
    # a cache made by another encoder config is refused
    with pytest.raises(ConfigError, match="rebuild the cache"):
        main(["--config", str(cfg_path), "encoder.seed=1", f"train.output_dir={tmp_path / 'exp2'}"])


def test_plots_of_losses_and_layer_weights(tmp_path, tiny_model_config):
    """The pictures written at the end of training: loss curves from TensorBoard, a layer-weight heatmap."""
    from torch.utils.tensorboard import SummaryWriter

    from toolkit.models.lalm import LALM
    from toolkit.train.plots import plot_layer_weights, plot_loss_curves, read_scalars

    writer = SummaryWriter(str(tmp_path / "tb"))
    for step, (tr, va) in enumerate([(3.0, 3.2), (2.0, 2.5), (1.5, 2.1)]):
        writer.add_scalar("train/loss", tr, step * 10)
        writer.add_scalar("val/loss", va, step * 10)
    writer.close()
    assert [round(v, 4) for _, v in read_scalars(tmp_path / "tb", ("val/loss",))["val/loss"]] == [3.2, 2.5, 2.1]
    assert plot_loss_curves(tmp_path / "tb", tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_loss_curves(tmp_path / "empty", tmp_path / "none.png") is None
    model = LALM.from_config(tiny_model_config)
    assert plot_layer_weights(model, tmp_path / "lw.png").stat().st_size > 1000
