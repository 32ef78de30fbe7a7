"""Fault drill: config values of the wrong type fail before anything loads, every problem in one paragraph.

Each value is checked against the annotation of the constructor or settings dataclass it feeds
(``toolkit.config.check_arguments``).  Before, ``train.max_steps=ten`` and friends raised tracebacks one
at a time, and ``selfgen.batch_size=four`` only failed after the backbone LLM had loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import test_train_fakes as fakes
from toolkit.config import REPO_ROOT, ConfigError

MINI = REPO_ROOT / "egs" / "mini" / "desta25" / "conf" / "desta25.yaml"


def nothing_may_load(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make building a model or a generation backend fail the test (the checks must come first)."""
    from toolkit.models.lalm import LALM
    from toolkit.models.chat_engines import CHAT_ENGINES

    loaded: list[str] = []

    def refuse(what):
        def f(*args, **kwargs):
            loaded.append(what)
            raise AssertionError(f"{what} was built before the config was checked")
        return f

    monkeypatch.setattr(LALM, "from_config", classmethod(lambda cls, *a, **k: refuse("LALM")()))
    monkeypatch.setattr(CHAT_ENGINES, "build", refuse("the selfgen backend (its LLM)"))
    return loaded


def test_training_type_errors_come_together_before_the_model(monkeypatch):
    from toolkit.bin.train import main

    loaded = nothing_may_load(monkeypatch)
    with pytest.raises(ConfigError) as err:
        main(["--config", str(MINI), "train.max_steps=ten", "encoder.tapped_layers=3", "train.output_dir=null",
              "train.lr='1e-4'", "adapter.num_querys=8"])
    msg = str(err.value)
    assert loaded == []
    assert "train.max_steps: expects int (TrainSettings), got 'ten' (str)" in msg
    assert "encoder.tapped_layers: expects list[int] | None (WhisperEncoder), got 3 (int)" in msg
    assert ("train.output_dir: expects str (TrainSettings), got None (null); null is not allowed here, "
            "give a value") in msg
    assert "train.lr: expects float (TrainSettings), got '1e-4' (str)" in msg  # a quoted number stays text
    assert "adapter.num_querys: unknown key" in msg  # key problems in the same error as type problems


def test_selfgen_batch_size_is_refused_before_the_llm_loads(monkeypatch, tmp_path: Path):
    from toolkit.bin.selfgen import main

    loaded = nothing_may_load(monkeypatch)
    cfg = tmp_path / "selfgen.yaml"
    cfg.write_text(f"""selfgen:
  data_dirs: [{tmp_path / 'data' / 'train'}]
  output_dir: {tmp_path / 'dump'}
  batch_size: 16
  backend: {{name: hf, llm: {{name: hf_causal_lm, model_path: {fakes.tiny_llama_path()}, dtype: float32}}}}
""")
    with pytest.raises(ConfigError) as err:
        main(["--config", str(cfg), "selfgen.batch_size=four", "selfgen.backend.device=[cpu]"])
    assert loaded == []
    msg = str(err.value)
    assert "selfgen.batch_size: expects int (SelfGenConfig), got 'four' (str)" in msg
    assert "selfgen.backend.device: expects str" in msg  # the backend's own arguments, in the same error


def test_the_cli_prints_one_paragraph_not_a_traceback():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DESTA_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "toolkit.bin.train", "--config", str(MINI), "train.max_steps=ten",
                           "encoder.tapped_layers=3", "train.output_dir=null"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error (ConfigError): invalid config:")
    for key in ("train.max_steps", "encoder.tapped_layers", "train.output_dir"):
        assert key in proc.stderr
