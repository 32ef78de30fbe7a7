"""Experiment loggers from YAML, through Lightning's own: ``train.loggers: [tensorboard, wandb, csv]``.

Each entry is a name, or a node ``{name: wandb, project: ..., ...}`` whose other keys go to that
Lightning logger's constructor (checked against its signature first, like every component node)::

    train:
      loggers:
        - tensorboard                                  # <output_dir>/tb (the default, read by the plots)
        - {name: wandb, project: desta25, offline: true}   # <output_dir>/wandb; WANDB_MODE=offline works too
        - csv                                          # <output_dir>/csv/metrics.csv

The resolved config goes to every logger as its hyperparameters, and the plots made after training
(loss curves, layer weights) as images (TensorBoard, W&B) or files beside the metrics (CSV).
Metrics logged with ``self.log`` reach all of them; the few records written outside ``self.log``
(the validation loss before the first step, validation generations) go through :func:`log_scalar`
and :func:`log_text`, which know each logger.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LOGGER_NAMES = ("tensorboard", "wandb", "csv")


def _node(spec: Any, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and "name" in spec:
        return str(spec["name"]), {k: v for k, v in spec.items() if k != "name"}
    raise ValueError(f"{where}: a logger is a name ({', '.join(LOGGER_NAMES)}) or a node "
                     f"{{name: ..., key: value}}, got {spec!r}")


def _logger_class(name: str):
    if name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger
    if name == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger


# Set by the toolkit: every logger writes under the run's directory, in a folder of its own name.
RUNTIME = {"tensorboard": {"save_dir", "name", "version"}, "wandb": {"save_dir"},
           "csv": {"save_dir", "name", "version"}}


def check_loggers(specs: Sequence[Any] | None, where: str = "train.loggers") -> list[str]:
    """Every problem of ``train.loggers`` (unknown names, bad keys, a missing wandb), without building anything."""
    from toolkit.config import check_arguments

    problems = []
    if specs is None:
        return problems
    if isinstance(specs, (str, Mapping)) or not isinstance(specs, Sequence):
        return [f"{where}: a list of loggers, e.g. [tensorboard, wandb]; got {specs!r}"]
    for i, spec in enumerate(specs):
        try:
            name, kwargs = _node(spec, f"{where}[{i}]")
        except ValueError as err:
            problems.append(str(err))
            continue
        if name not in LOGGER_NAMES:
            problems.append(f"{where}[{i}]: unknown logger '{name}'; choose from {', '.join(LOGGER_NAMES)}")
            continue
        if name == "wandb" and importlib.util.find_spec("wandb") is None:
            problems.append(f"{where}[{i}]: wandb is not installed: pip install 'desta-toolkit[wandb]' "
                f"(wandb==0.31.0), "
                            f"or drop it from the list")
            continue
        problems += check_arguments(_logger_class(name), kwargs, f"{where}[{i}]", frozenset(RUNTIME[name]))
    return problems


def build_loggers(specs: Sequence[Any] | None, out_dir: str | Path, run_name: str | None = None) -> list[Any]:
    """Lightning loggers for ``train.loggers`` (default: TensorBoard only), all writing under ``out_dir``."""
    from toolkit.config import raise_if_problems

    specs = ["tensorboard"] if specs is None else list(specs)
    raise_if_problems(check_loggers(specs))
    out = str(out_dir)
    loggers = []
    for spec in specs:
        name, kwargs = _node(spec, "train.loggers")
        cls = _logger_class(name)
        if name == "tensorboard":
            loggers.append(cls(save_dir=out, name="tb", version="", **{"default_hp_metric": False, **kwargs}))
        elif name == "csv":
            loggers.append(cls(save_dir=out, name="csv", version="", **kwargs))
        else:  # wandb: its run directory goes to <out>/wandb (offline: wandb/offline-run-*)
            Path(out).mkdir(parents=True, exist_ok=True)
            loggers.append(cls(save_dir=out, **{"project": "desta-toolkit", "name": run_name, **kwargs}))
    return loggers


def kind(logger: Any) -> str:
    """``tensorboard``, ``wandb``, ``csv`` or ``other``."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        return "tensorboard"
    if isinstance(logger, CSVLogger):
        return "csv"
    if type(logger).__name__ == "WandbLogger":
        return "wandb"
    return "other"


def log_scalar(loggers: Sequence[Any], tag: str, value: float, step: int) -> None:
    """A scalar outside ``self.log`` (Lightning drops that during the sanity check) to every logger."""
    for logger in loggers:
        logger.log_metrics({tag: float(value)}, step=step)


def log_text(loggers: Sequence[Any], tag: str, markdown: str, step: int, rows: Sequence[Sequence[str]] = (),
             columns: Sequence[str] = ()) -> None:
    """A markdown table (TensorBoard text), a W&B table, or a file beside the CSV metrics."""
    for logger in loggers:
        k = kind(logger)
        if k == "tensorboard":
            logger.experiment.add_text(tag, markdown, step)
        elif k == "wandb" and rows:
            logger.log_text(key=tag, columns=list(columns), data=[list(r) for r in rows], step=step)
        elif k == "csv":
            folder = Path(logger.log_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{tag.replace('/', '_')}_step{step}.md").write_text(markdown + "\n")


def log_config(loggers: Sequence[Any], config: Mapping[str, Any]) -> None:
    """The resolved run config as every logger's hyperparameters (hparams.yaml, the W&B run config)."""
    for logger in loggers:
        logger.log_hyperparams(dict(config))
        if kind(logger) != "wandb":
            logger.save()


def log_images(loggers: Sequence[Any], images: Mapping[str, Path], step: int) -> None:
    """The plots written after training, to every logger."""
    import shutil

    images = {k: Path(v) for k, v in images.items() if v is not None and Path(v).is_file()}
    if not images:
        return
    for logger in loggers:
        k = kind(logger)
        if k == "tensorboard":
            import numpy as np
            from PIL import Image

            for tag, path in images.items():
                logger.experiment.add_image(tag, np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")
            logger.experiment.flush()
        elif k == "wandb":
            for tag, path in images.items():
                logger.log_image(key=tag, images=[str(path)], step=step)
        elif k == "csv":
            for path in images.values():
                shutil.copyfile(path, Path(logger.log_dir) / path.name)


def finish(loggers: Sequence[Any]) -> None:
    """Flush and close (a W&B run writes its summary and marks the offline run complete)."""
    for logger in loggers:
        logger.finalize("success")
        if kind(logger) == "wandb":
            logger.experiment.finish()  # blocks until the run's records are on disk (offline) or sent
