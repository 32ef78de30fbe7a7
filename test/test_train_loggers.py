"""train.loggers from YAML: TensorBoard, W&B (offline) and CSV through Lightning's loggers, config and plots to each."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

import test_train_fakes as fakes


def test_tensorboard_wandb_offline_and_csv_get_metrics_config_and_plots(tmp_path: Path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is needed: pip install -e .[wandb] (tools/install.sh installs it)")
    from toolkit.bin.train import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    corpus = fakes.make_corpus(tmp_path, n_train=8, n_dev=2)
    cfg = fakes.write_config(tmp_path / "run", corpus, train={"max_steps": 3, "loggers": ["tensorboard", {"name": "wandb", "project": "t"}, "csv"]})
    assert main(["--config", str(cfg)]) == 0
    exp = tmp_path / "run" / "exp"

    runs = sorted((exp / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((exp / "wandb").iterdir()) if (exp / "wandb").exists() else "no wandb dir"
    records = list(runs[0].glob("run-*.wandb"))
    assert records, "the offline run has no data file"
    # An offline run keeps its config and history as records in this file, written by wandb's own service
    # process; under load it can land a moment after run.finish() returns, so allow it a minute.
    deadline = time.time() + 60
    while b"val/loss" not in records[0].read_bytes() and time.time() < deadline:
        time.sleep(1)
    data = records[0].read_bytes()
    assert b"train_fake_adapter" in data and b"max_steps" in data and b"train/loss" in data and b"val/loss" in data
    media = runs[0] / "files" / "media"
    assert list(media.rglob("loss_curves*.png")) and list(media.rglob("generations*.table.json"))

    with open(exp / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("train/loss") for r in rows) and any(r.get("val/loss") for r in rows)
    assert "train_fake_adapter" in (exp / "csv" / "hparams.yaml").read_text()
    assert (exp / "csv" / "loss_curves.png").is_file() and list((exp / "csv").glob("val_generations_step*.md"))

    assert "train_fake_adapter" in (exp / "tb" / "hparams.yaml").read_text()
    from toolkit.train.plots import read_scalars

    assert read_scalars(exp / "tb", ("val/loss",))["val/loss"][0][0] == 0  # the before-training point, as before


def test_bad_logger_entries_are_refused_naming_the_key(tmp_path: Path):
    from toolkit.config import ConfigError
    from toolkit.train.loggers import check_loggers

    assert check_loggers(None) == [] and check_loggers(["tensorboard", "csv"]) == []
    problems = check_loggers(["mlflow", {"name": "csv", "flush_logs_every_n_step": 3}, {"name": "tensorboard", "save_dir": "x"}])
    assert "train.loggers[0]: unknown logger 'mlflow'" in problems[0]
    assert "train.loggers[1].flush_logs_every_n_step: unknown key" in problems[1]
    assert "train.loggers[2].save_dir: is set by the toolkit" in problems[2]
    from toolkit.bin.train import main

    corpus = fakes.make_corpus(tmp_path, n_train=2, n_dev=1)
    cfg = fakes.write_config(tmp_path / "bad", corpus, train={"loggers": ["tensorbord"]})
    with pytest.raises(ConfigError, match="unknown logger 'tensorbord'"):
        main(["--config", str(cfg)])
