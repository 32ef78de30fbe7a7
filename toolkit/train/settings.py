"""The training stage's settings: the ``train:`` section as a dataclass, checked before anything loads.

``toolkit.bin.train`` builds it from the config (``toolkit.config.check_section`` for keys and types, then
:meth:`TrainSettings.problems` for values and combinations). The stage skips itself while :func:`done_marker`
exists and the recipe only calls the stage, so that file is the one record that training finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DONE = ".done"


def done_marker(output_dir: str) -> Path:
    """``<output_dir>/.done``: written last; while it exists the stage is skipped (delete it to train again)."""
    return Path(output_dir) / DONE


STRATEGIES = ("auto", "ddp", "fsdp", "deepspeed_stage_2", "deepspeed_stage_3")
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true")


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

    def done_marker(self) -> Path:
        return done_marker(self.output_dir)

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
