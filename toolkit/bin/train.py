"""Stage 5: train the adapter (and LoRA, if configured) on AQA-style rows with Lightning.

    python -m toolkit.bin.train --config conf/desta25.yaml [train.max_steps=200 train.devices=2 ...]

Recipe shape (torchtune): 1. read and check the config (every problem at once, incompatible
flags refused with the fix), 2. set up (model, data, module, trainer), 3. fit (resumes from
``<output_dir>/checkpoints/last.ckpt`` when present; validates a couple of dev batches first),
4. write ``<output_dir>/model/`` (``LALM.save_pretrained``: trainable weights + resolved config,
loadable by ``LALM.from_pretrained`` and the decode/export stages), the resolved config and,
last, the ``.done`` marker.

Outputs in ``train.output_dir`` (``<exp>``): ``checkpoints/`` (``last.ckpt``: trainable weights,
optimizer, scheduler, loop and RNG state), ``tb/`` (TensorBoard), ``model/``, ``config.yaml``,
``bad_audio.txt`` (unreadable audio files, one per line, when any), ``.done``.

Multi-device: ``train.strategy=ddp train.devices=N`` (Lightning launches the other ranks as
subprocesses running this same command); several nodes: ``train.num_nodes`` under torchrun or
SLURM.  ``ddp_spawn`` is refused: a model unpickled in a fresh process loses its HF hooks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from toolkit.train.settings import TrainSettings

log = logging.getLogger("toolkit.train")


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto``: ``bf16-mixed`` on a GPU or a CPU with native bf16, else ``32-true`` (emulated bf16 is slower)."""
    if precision != "auto":
        return precision
    import torch

    from toolkit.models.llms.hf_causal_lm import cpu_has_native_bf16

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu or cpu_has_native_bf16() else "32-true"


def check_strategy_backend(strategy: str) -> None:
    """Optional engines import only when chosen; a missing one names the pip extra."""
    if strategy.startswith("deepspeed"):
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise ImportError(f"train.strategy={strategy} needs DeepSpeed, which is not installed: "
                              f"pip install 'desta-toolkit[deepspeed]' (or pip install deepspeed), or use train.strategy=ddp")


# ------------------------------------------------------------------------------ 1. read + check


def read_config(cfg: Any) -> TrainSettings:
    """Every problem of the config at once: the ``train:`` section, its data module and the model."""
    from toolkit.config import ConfigError, check_section, raise_if_problems, to_container
    from toolkit.data.section import allow_pickle

    allow_pickle(cfg)  # data.allow_pickle: may pickled ark entries be read (they run code)
    if "train" not in cfg:
        raise ConfigError("the config has no 'train:' section; see toolkit/train/settings.py (TrainSettings) "
                          "for its keys")
    from toolkit.models.lalm import check_model_config
    from toolkit.config import check_arguments
    from toolkit.train.datamodule import AQADataModule

    # Keys and value types of every section first, all in one error; the value checks of
    # TrainSettings.problems() compare numbers, so they run only on a train: section of the right types.
    train_problems = check_section(cfg.train, TrainSettings, "train")
    problems = list(train_problems)
    data = to_container(cfg.train.get("data")) if isinstance(cfg.train, Mapping) else None
    if isinstance(data, Mapping) and "sources" in data:  # weighted mixing (toolkit/train/mixing.py)
        from toolkit.train.mixing import check_sources, mixed_datamodule_class

        problems += check_sources(data["sources"])
        problems += check_arguments(mixed_datamodule_class(), data, "train.data", AQADataModule.RUNTIME)
    elif isinstance(data, Mapping):
        problems += check_arguments(AQADataModule, data, "train.data", AQADataModule.RUNTIME)
    problems += check_model_config(cfg)
    settings = None
    if not train_problems:
        settings = TrainSettings(**to_container(cfg.train))
        problems = settings.problems() + problems
    raise_if_problems(problems)
    check_strategy_backend(settings.strategy)
    return settings


# ------------------------------------------------------------------------------ 2. set up


def build_strategy(settings: TrainSettings) -> Any:
    if settings.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=settings.find_unused_parameters)
    return settings.strategy


def pack_length(settings: TrainSettings, model: Any) -> int | None:
    """Longest packed LLM sequence for ``train.packing`` (None: packing off)."""
    if not settings.packing:
        return None
    return settings.pack_length or model.max_seq_len or 1024


def setup(cfg: Any, settings: TrainSettings) -> dict[str, Any]:
    """Build model, data, module and trainer in dependency order."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from toolkit.config import ConfigError, to_container
    from toolkit.models.lalm import LALM
    from toolkit.train.data import Collator
    from toolkit.train.checkpoint import AtomicCheckpointIO
    from toolkit.train.datamodule import AQADataModule
    from toolkit.train.loggers import build_loggers
    from toolkit.train.module import LALMTrainingModule

    import warnings

    # Intentional: frozen parts run in eval mode (see LALMTrainingModule.train).
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
    # Lightning cannot see that the loader resumes mid-epoch: the batch sampler skips the trained batches
    # (AQADataModule._resume_position), which the resume test checks bit for bit.
    warnings.filterwarnings("ignore", message=r".*dataloader is not resumable.*")
    out = Path(settings.output_dir)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    L.seed_everything(settings.seed, workers=True, verbose=False)

    # model
    model = LALM.from_config(cfg)
    counts = model.parameter_counts()
    log.info("model: %s trainable of %s parameters (%s)", f"{counts['all']['trainable']:,}", f"{counts['all']['total']:,}",
             ", ".join(f"{k} {v['trainable']:,}/{v['total']:,}" for k, v in counts.items() if k != "all"))
    data_args = dict(settings.data)
    if data_args.get("feature_cache") and any(p.requires_grad for p in model.encoder.parameters()):
        raise ConfigError("train.data.feature_cache is set but the encoder has trainable weights: cached states would be stale; "
                          "unset train.data.feature_cache or freeze the encoder")

    # data: tokenization + features run in workers; the declared vector counts cut over-long responses there
    vector_count = model.audio_vector_count()
    collator = Collator(model.formatter, model.encoder.feature_extractor(), model.max_seq_len, vector_count,
                        num_tapped=model.encoder.num_tapped)
    if "sources" in data_args:
        from toolkit.train.mixing import mixed_datamodule_class

        AQADataModule = mixed_datamodule_class()  # noqa: N806 (the same interface, several weighted sources)
    datamodule = AQADataModule(**data_args, collator=collator, batch_size=settings.batch_size,
                               eval_batch_size=settings.eval_batch_size, num_workers=settings.num_workers,
                               seed=settings.seed, bad_audio_path=str(out / "bad_audio.txt"),
                               encoder_config=to_container(cfg.encoder), batch_tokens=settings.batch_tokens,
                               batch_seconds=settings.batch_seconds)
    datamodule.setup("fit")
    has_dev = bool(datamodule.dev_samples)
    if not has_dev:
        log.warning("no dev set (train.data.dev_jsonl): validation loss and generations are off")

    accumulation = settings.accumulation()
    world = settings.world_size()
    log.info("global batch = %d per device x %d devices x %d accumulation = %d samples per optimizer step",
             settings.batch_size, world, accumulation, settings.batch_size * world * accumulation)

    module = LALMTrainingModule(model, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay,
                                warmup_steps=settings.warmup_steps, num_val_generations=settings.num_val_generations,
                                val_generation_max_new_tokens=settings.val_generation_max_new_tokens,
                                config=to_container(cfg), pack_length=pack_length(settings, model))
    module.val_generation_samples = datamodule.dev_samples[: settings.num_val_generations]
    if hasattr(datamodule, "dev_source_of"):  # a mix: val/loss/<source> beside val/loss
        module.set_val_sources(datamodule.dev_source_of)

    checkpoint = ModelCheckpoint(dirpath=str(out / "checkpoints"), filename="step{step}", auto_insert_metric_name=False,
                                 save_last=True, save_top_k=-1, every_n_train_steps=settings.checkpoint_every_n_steps,
                                 save_on_train_epoch_end=False)
    val_interval = settings.val_check_interval
    trainer = L.Trainer(
        accelerator=settings.accelerator, devices=settings.devices, num_nodes=settings.num_nodes,
        strategy=build_strategy(settings), precision=resolve_precision(settings.precision, settings.accelerator),
        max_steps=settings.max_steps if settings.max_steps is not None else -1, max_epochs=settings.max_epochs,
        accumulate_grad_batches=accumulation, gradient_clip_val=settings.grad_clip or None,
        val_check_interval=val_interval if has_dev else None,
        check_val_every_n_epoch=None if isinstance(val_interval, int) else 1,
        limit_val_batches=settings.limit_val_batches if has_dev else 0,
        num_sanity_val_steps=settings.num_sanity_val_steps if has_dev else 0,
        log_every_n_steps=settings.log_every_n_steps, enable_progress_bar=settings.progress_bar,
        logger=build_loggers(settings.loggers, out, run_name=out.name if out.name != "train" else out.parent.name),
        callbacks=[checkpoint], plugins=[AtomicCheckpointIO.make(settings.keep_checkpoints)],
        use_distributed_sampler=False,
        enable_model_summary=False, default_root_dir=str(out),
    )
    return {"model": model, "module": module, "datamodule": datamodule, "trainer": trainer, "accumulation": accumulation}


# ------------------------------------------------------------------------------ 3. run


def main(argv: Sequence[str] | None = None) -> int:
    from toolkit.config import parse_cli, save_resolved
    from toolkit.markers import already_done
    from toolkit.train.settings import done_marker

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers fork after the tokenizer is used
    args, cfg = parse_cli(argv, description=__doc__.splitlines()[0])
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    rank = rank_zero_only.rank
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    # The marker is looked at before the full check (which imports the model code), so a finished run is
    # skipped at once; a train: section too broken to name its output_dir is reported by read_config.
    output_dir = cfg.get("train", {}).get("output_dir") if hasattr(cfg.get("train"), "get") else None
    if isinstance(output_dir, str) and already_done("Stage 5: training", [done_marker(output_dir)], args.force):
        return 0
    settings = read_config(cfg)
    done, out = settings.done_marker(), Path(settings.output_dir)
    # --force retrains a *finished* run from scratch; an unfinished one (killed) still resumes from last.ckpt.
    if args.force and done.exists():
        import shutil

        log.info("--force: training %s again from scratch (removing its checkpoints, model and done marker)", out)
        for name in ("checkpoints", "model"):
            shutil.rmtree(out / name, ignore_errors=True)
        done.unlink()

    parts = setup(cfg, settings)
    trainer, module = parts["trainer"], parts["module"]
    cfg.train.accumulate_grad_batches = parts["accumulation"]
    from toolkit.train.checkpoint import resume_checkpoint

    resume = resume_checkpoint(out / "checkpoints", may_modify=rank == 0)
    ckpt_path = str(resume) if resume is not None else None
    if trainer.is_global_zero:
        save_resolved(cfg, out, "config.yaml")
        from toolkit.config import to_container
        from toolkit.train.loggers import log_config

        log_config(trainer.loggers, to_container(cfg))
        log.info("Stage 5: training: %s -> %s%s", settings.data.get("train_jsonl"), out,
                 f" (resuming from {resume})" if ckpt_path else "")
    trainer.fit(module, datamodule=parts["datamodule"], ckpt_path=ckpt_path)
    if trainer.interrupted:
        log.warning("training was interrupted; rerun the same command to resume from %s",
                    out / "checkpoints" / "last.ckpt")
        return 1

    # 4. export-ready model, resolved config, done marker last
    if trainer.is_global_zero:
        summary = {"global_step": int(trainer.global_step), "skipped_batches": module.skipped_batches,
                   **({"data_rows": parts["datamodule"].source_rows()}
                      if hasattr(parts["datamodule"], "source_rows") else {}),
                   "skipped_grad_steps": module.skipped_grad_steps, "train": asdict(settings)}
        parts["model"].save_pretrained(out / "model", extra={"training": summary})
        save_resolved(cfg, out, "config.yaml")
        from toolkit.train.plots import plot_layer_weights, plot_loss_curves

        from toolkit.train.loggers import finish, log_images

        pictures = {"plots/loss_curves": plot_loss_curves(out / "tb", out / "loss_curves.png"),
                    "plots/layer_weights": plot_layer_weights(parts["model"], out / "layer_weights.png")}
        for picture in pictures.values():
            if picture is not None:
                log.info("plot: %s", picture)
        log_images(trainer.loggers, pictures, int(trainer.global_step))
        finish(trainer.loggers)
        done.touch()
        log.info("done: %d steps, %d batches skipped; model in %s (LALM.from_pretrained)", trainer.global_step,
                 module.skipped_batches, out / "model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
