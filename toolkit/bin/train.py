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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("toolkit.train")

DONE = ".done"
STRATEGIES = ("auto", "ddp", "fsdp", "deepspeed_stage_2", "deepspeed_stage_3")
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true")


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto``: ``bf16-mixed`` on a GPU or a CPU with native bf16, else ``32-true`` (emulated bf16 is slower)."""
    if precision != "auto":
        return precision
    import torch

    from toolkit.models.llms.hf_causal_lm import cpu_has_native_bf16

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu or cpu_has_native_bf16() else "32-true"


@dataclass
class TrainSettings:
    """The ``train:`` section; its keys are these fields.

    Args:
        output_dir: the run's directory (``<exp>``): checkpoints, TensorBoard, model, logs.
        data: the data module's arguments (``toolkit.train.datamodule.AQADataModule``):
            ``train_jsonl``, ``dev_jsonl``, ``audio_root``, ``data_dirs``, ``feature_cache``,
            ``bucketing``, ``bucket_multiplier``, ``max_train_rows``, ``max_dev_rows``.
        accelerator: ``auto``, ``cpu``, ``gpu``/``cuda``.
        devices: devices per node (an int, or ``auto``).
        num_nodes: machines (multi-node runs under torchrun or SLURM).
        strategy: ``auto``, ``ddp``, ``fsdp``, ``deepspeed_stage_2``, ``deepspeed_stage_3``.
        find_unused_parameters: DDP's flag (true only if some trainable weights skip some batches).
        precision: ``auto`` (bf16-mixed where bf16 is native, else 32-true), ``32-true``, ``bf16-mixed``,
            ``16-mixed`` (GPU only), ``bf16-true``.
        batch_size: samples per device per micro-batch (with a budget below: the most rows a batch may hold).
        batch_tokens: token budget per micro-batch: rows x longest row (LLM positions, audio vectors
            included) stays within it, so short clips come many to a batch (null: fixed batch_size).
        batch_seconds: the same budget in audio seconds (rows x longest clip); both may be set.
        packing: lay each batch's rows end to end in LLM sequences of at most ``pack_length``
            positions, with no attention between rows (same loss; less padding). Off by default.
        pack_length: longest packed sequence (null: lalm.max_seq_len, or the longest row if longer).
        eval_batch_size: validation batch size (null: batch_size).
        accumulate_grad_batches: micro-batches per optimizer step (null: 1, or derived from global_batch_size).
        global_batch_size: samples per optimizer step over all devices; sets the accumulation so
            it means the same on 1 or N devices (null: batch_size x devices x nodes x accumulation).
        max_steps: optimizer steps (-1: use max_epochs).
        max_epochs: epochs (null: use max_steps).
        val_check_interval: validate every N training batches (int) or fraction of an epoch (float).
        limit_val_batches: dev batches per validation (int) or fraction (float).
        num_sanity_val_steps: dev batches validated before the first step (catches a broken dev set early).
        num_val_generations: dev samples answered and logged as text at each validation (rank 0).
        val_generation_max_new_tokens: answer budget of those generations.
        lr, betas, weight_decay: AdamW (fused on CUDA) over trainable weights only.
        warmup_steps: linear warmup steps before the cosine decay.
        grad_clip: gradient norm clipping (0 or null: off).
        num_workers: data-loader workers per device (tokenization + features run there).
        seed: seeds weights, data order and dropout (same seed: same run).
        log_every_n_steps: TensorBoard logging interval.
        checkpoint_every_n_steps: write ``last.ckpt`` and ``step<N>.ckpt`` every N optimizer steps.
        keep_checkpoints: ``step<N>.ckpt`` files kept, newest first (a torn ``last.ckpt`` falls back to them).
        progress_bar: show Lightning's progress bar.
        torch_threads: CPU threads for torch (null: torch's default).
        loggers: experiment loggers, names or ``{name: ..., key: value}`` nodes from ``tensorboard``, ``wandb``,
            ``csv`` (toolkit/train/loggers.py); null: ``[tensorboard]``.
    """

    output_dir: str
    data: dict[str, Any] = field(default_factory=dict)
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    find_unused_parameters: bool = False
    precision: str = "32-true"
    batch_size: int = 12
    batch_tokens: int | None = None
    batch_seconds: float | None = None
    packing: bool = False
    pack_length: int | None = None
    eval_batch_size: int | None = None
    accumulate_grad_batches: int | None = None
    global_batch_size: int | None = None
    max_steps: int = -1
    max_epochs: int | None = None
    val_check_interval: Any = 1.0
    limit_val_batches: Any = 1.0
    num_sanity_val_steps: int = 2
    num_val_generations: int = 4
    val_generation_max_new_tokens: int = 64
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    weight_decay: float = 0.01
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    num_workers: int = 2
    seed: int = 0
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 500
    keep_checkpoints: int = 2
    progress_bar: bool = True
    torch_threads: int | None = None
    loggers: list[Any] | None = None

    # -------------------------------------------------------------------------- checks
    def problems(self) -> list[str]:
        """Every bad value or incompatible combination, each naming the flag(s) and the fix."""
        p = []
        if self.strategy not in STRATEGIES:
            hint = (" (ddp_spawn/ddp_fork are refused: a model unpickled in a fresh process loses its HF hooks; use train.strategy=ddp)"
                    if str(self.strategy).startswith("ddp_") else "")
            p.append(f"train.strategy: '{self.strategy}' is not one of {', '.join(STRATEGIES)}{hint}")
        if self.precision not in PRECISIONS:
            p.append(f"train.precision: '{self.precision}' is not one of {', '.join(PRECISIONS)}")
        cpu = self.accelerator == "cpu"
        if cpu and self.precision == "16-mixed":
            p.append("train.precision=16-mixed needs a GPU but train.accelerator=cpu; use train.precision=bf16-mixed or 32-true on CPU")
        if cpu and (self.strategy == "fsdp" or self.strategy.startswith("deepspeed")):
            p.append(f"train.strategy={self.strategy} needs GPUs but train.accelerator=cpu; use train.strategy=ddp on CPU")
        if self.max_steps in (None, -1) and self.max_epochs is None:
            p.append("train.max_steps and train.max_epochs are both unset; set one (e.g. train.max_steps=1000)")
        if self.max_steps is not None and self.max_steps not in (-1,) and self.max_steps < 1:
            p.append(f"train.max_steps must be >= 1 or -1, got {self.max_steps}")
        if self.batch_size < 1:
            p.append(f"train.batch_size must be >= 1, got {self.batch_size}")
        for name in ("batch_tokens", "batch_seconds", "pack_length"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                p.append(f"train.{name} must be > 0 or null, got {value}")
        if self.pack_length is not None and not self.packing:
            p.append(f"train.pack_length={self.pack_length} is set but train.packing is false; set train.packing=true or drop it")
        if self.lr <= 0:
            p.append(f"train.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            p.append(f"train.betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup_steps < 0:
            p.append(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.max_steps not in (None, -1) and self.warmup_steps >= self.max_steps > 0:
            p.append(f"train.warmup_steps={self.warmup_steps} >= train.max_steps={self.max_steps}: the learning rate would never "
                     f"decay; lower train.warmup_steps")
        if self.checkpoint_every_n_steps < 1:
            p.append(f"train.checkpoint_every_n_steps must be >= 1, got {self.checkpoint_every_n_steps}")
        if self.keep_checkpoints < 1:
            p.append(f"train.keep_checkpoints must be >= 1 (the newest step<N>.ckpt files kept), "
                     f"got {self.keep_checkpoints}")
        if not isinstance(self.data, dict) or ("train_jsonl" not in self.data and "sources" not in self.data):
            p.append("train.data.train_jsonl: missing; point it at the self-generated rows (e.g. "
                     "dump/selfgen/train.jsonl), or give train.data.sources: [{name, path, weight}, ...] to mix several")
        elif "train_jsonl" in self.data and "sources" in self.data:
            p.append("train.data.train_jsonl and train.data.sources are both set; keep one (a source "
                     "list can hold that file)")
        if self.global_batch_size is not None:
            per_step = self.batch_size * self.world_size()
            if self.global_batch_size % per_step:
                p.append(f"train.global_batch_size={self.global_batch_size} is not a multiple of train.batch_size x devices x num_nodes "
                         f"= {per_step}; change one of them")
            elif self.accumulate_grad_batches is not None and self.accumulate_grad_batches != self.global_batch_size // per_step:
                p.append(f"train.global_batch_size={self.global_batch_size} and train.accumulate_grad_batches={self.accumulate_grad_batches} "
                         f"disagree (batch {self.batch_size} x {self.world_size()} devices x {self.accumulate_grad_batches} = "
                         f"{per_step * self.accumulate_grad_batches}); set only one of them")
        from toolkit.train.loggers import check_loggers

        p += check_loggers(self.loggers)
        if self.accumulate_grad_batches is not None and self.accumulate_grad_batches < 1:
            p.append(f"train.accumulate_grad_batches must be >= 1, got {self.accumulate_grad_batches}")
        return p

    def device_count(self) -> int:
        if isinstance(self.devices, int):
            return self.devices
        if isinstance(self.devices, (list, tuple)):
            return len(self.devices)
        if str(self.devices).isdigit():
            return int(self.devices)
        import torch

        return torch.cuda.device_count() if self.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else 1

    def world_size(self) -> int:
        return self.device_count() * self.num_nodes

    def accumulation(self) -> int:
        if self.global_batch_size is not None:
            return self.global_batch_size // (self.batch_size * self.world_size())
        return self.accumulate_grad_batches or 1


def check_strategy_backend(strategy: str) -> None:
    """Optional engines import only when chosen; a missing one names the pip extra."""
    if strategy.startswith("deepspeed"):
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise ImportError(f"train.strategy={strategy} needs DeepSpeed, which is not installed: "
                              f"pip install 'desta-toolkit[deepspeed]' (or pip install deepspeed), or use train.strategy=ddp")


# ------------------------------------------------------------------------------ 1. read + check


def read_config(argv: Sequence[str] | None) -> tuple[Any, TrainSettings]:
    from toolkit.config import ConfigError, check_section, parse_cli, raise_if_problems, to_container

    args, cfg = parse_cli(argv, description=__doc__.splitlines()[0])
    from toolkit.data.section import allow_pickle

    allow_pickle(cfg)  # data.allow_pickle: may pickled ark entries be read (they run code)
    cfg.force_restart = bool(args.force)  # read by main(); not a train: key
    if "train" not in cfg:
        raise ConfigError("the config has no 'train:' section; see toolkit/bin/train.py (TrainSettings) for its keys")
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
    return cfg, settings


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
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers fork after the tokenizer is used
    cfg, settings = read_config(argv)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    rank = rank_zero_only.rank
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    out = Path(settings.output_dir)
    # --force retrains a *finished* run from scratch; an unfinished one (killed) still resumes from last.ckpt.
    if cfg.pop("force_restart", False) and (out / DONE).exists():
        import shutil

        log.info("--force: training %s again from scratch (removing its checkpoints, model and done marker)", out)
        for name in ("checkpoints", "model", DONE):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    if (out / DONE).exists():
        log.info("Stage 5: training: %s is already done (%s exists); remove it to train again", out, out / DONE)
        return 0
    from toolkit.config import save_resolved

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
        (out / DONE).touch()
        log.info("done: %d steps, %d batches skipped; model in %s (LALM.from_pretrained)", trainer.global_step,
                 module.skipped_batches, out / "model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
