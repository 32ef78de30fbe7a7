"""The one LightningModule: trains a :class:`~toolkit.models.lalm.LALM` (adapter, optional LoRA).

What it adds around the model, top to bottom:

1. ``training_step``: the causal-LM loss on response tokens; a batch whose loss is not finite
   (or that lost every sample to unreadable audio) is skipped **on every rank together** (a flag
   is all-reduced, so DDP never waits for a rank that gave up),
   counted and logged.  (Every rank then backpropagates an exact zero through the trainable
   weights and the optimizer step is dropped, since Lightning refuses ``None`` under DDP.)
   Non-finite gradients (finite loss) are dropped before the optimizer
   step the same way (gradients are identical on every rank after DDP's all-reduce).
2. Throughput and memory in TensorBoard: loss, lr, grad norm, samples/s, audio seconds/s,
   tokens/s (global, estimated as rank 0's rate x world size), peak memory.
3. Validation: token-mean loss over the dev set (all ranks) and, on rank 0, a few greedy
   generations logged as text with DeSTA2.5's consecutive-words accuracy.
4. ``configure_optimizers``: AdamW over trainable parameters only (fused on CUDA), cosine
   schedule with linear warmup over ``trainer.estimated_stepping_batches``.
5. Checkpoints hold only trainable weights (``on_save_checkpoint`` trims the state dict; loading
   is non-strict for the frozen rest but checks every trainable key is there), the resolved
   config, the skip counter and the RNG states, so a resumed run draws the same dropout masks as
   an uninterrupted one.
"""

from __future__ import annotations

import logging
import random
import resource
import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from toolkit.models.encoders.base import EncoderOutput
from toolkit.models.lalm import LALM

log = logging.getLogger(__name__)


def peak_memory_mib(device: torch.device) -> float:
    """Peak allocated accelerator memory, or the process's peak resident memory on CPU (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def rng_states() -> dict[str, Any]:
    """Every RNG state as tensors and plain values (Lightning loads checkpoints with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "gauss": float(gauss)}
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (a collective: every rank calls it, as Lightning's checkpoint dump does).

    Ranks start from one seed but draw different amounts (batch shapes differ), so each rank's
    state is saved and a resumed rank continues its own stream.
    """
    states = rng_states()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()) or torch.distributed.get_world_size() == 1:
        return [states]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, states)
    return gathered


def rng_states_for_rank(saved: Mapping[str, Any], rank: int, world_size: int) -> Mapping[str, Any] | None:
    """The states a rank restores from a checkpoint's ``desta`` section (rank 0's when the world size changed)."""
    per_rank = saved.get("rng_per_rank")
    if per_rank and len(per_rank) == world_size:
        return per_rank[rank]
    if per_rank and rank == 0:
        log.warning("the checkpoint was saved by %d ranks and this run has %d: every rank restarts from rank 0's RNG "
                    "state (dropout draws differ from an uninterrupted run)", len(per_rank), world_size)
    return per_rank[0] if per_rank else saved.get("rng")


class LALMTrainingModule(L.LightningModule):
    """Lightning wrapper that trains the trainable parts of a LALM.

    Args:
        model: the composite model (frozen parts stay frozen; only ``requires_grad`` weights train).
        lr, betas, weight_decay: AdamW settings (the reference: 1e-4, (0.9, 0.98), 0.01).
        warmup_steps: linear warmup before the cosine decay (optimizer steps).
        num_val_generations: dev samples answered greedily at every validation (rank 0).
        val_generation_max_new_tokens: answer budget of those generations.
        config: the resolved run config, stored in every checkpoint.
        pack_length: pack each training batch's rows into sequences of at most this many LLM
            positions (``train.packing``; same loss as unpacked, see ``toolkit/models/packing.py``);
            None trains on padded rows.
    """

    def __init__(
        self,
        model: LALM,
        lr: float = 1e-4,
        betas: Sequence[float] = (0.9, 0.98),
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        num_val_generations: int = 4,
        val_generation_max_new_tokens: int = 64,
        config: Mapping[str, Any] | None = None,
        pack_length: int | None = None,
    ):
        super().__init__()
        self.model = model
        self.pack_length = pack_length
        self.lr, self.betas, self.weight_decay = lr, tuple(betas), weight_decay
        self.warmup_steps = warmup_steps
        self.num_val_generations = num_val_generations
        self.val_generation_max_new_tokens = val_generation_max_new_tokens
        self.run_config = dict(config or {})
        self.val_generation_samples: list[Any] = []  # set by the training CLI from the dev set
        self.skipped_batches = 0
        self.skipped_grad_steps = 0
        self.val_source_of: dict[str, str] = {}  # dev sample id -> source name (a data mix), see set_val_sources
        self.val_source_names: list[str] = []
        self.strict_loading = False  # checkpoints hold trainable weights only; see on_load_checkpoint
        self._rng_to_restore: Mapping[str, Any] | None = None
        self._window_has_data = False  # a micro-batch of the current optimizer step was not skipped
        self._last_batch_end: float | None = None
        self._val_sums: torch.Tensor | None = None

    # -------------------------------------------------------------------------- mode
    def train(self, mode: bool = True) -> "LALMTrainingModule":
        # Frozen parts stay in eval mode (no dropout), as the frozen reference encoder/LLM are.
        super().train(mode)
        if mode:
            for part in (self.model.encoder, self.model.llm):
                if not any(p.requires_grad for p in part.parameters()):
                    part.eval()
        return self

    # -------------------------------------------------------------------------- forward
    def _forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        # Validation stays unpacked: its loss sums are what every packing setting is compared by.
        pack = self.pack_length if self.training else None
        if batch["hidden_states"] is not None:
            enc = EncoderOutput(hidden_states=list(batch["hidden_states"]), lengths=batch["lengths"])
            return self.model(conversations=batch["conversations"], encoder_output=enc, pack_length=pack)
        return self.model(conversations=batch["conversations"], features=batch["features"], pack_length=pack)

    def _all_ranks_any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is True on any rank (one tiny all-reduce)."""
        value = torch.tensor(float(flag), device=self.device)
        if self.trainer is not None and self.trainer.world_size > 1:
            value = self.trainer.strategy.reduce(value, reduce_op="sum")
        return bool(value.item() > 0)

    # -------------------------------------------------------------------------- 1. training
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        stats = batch["stats"]
        loss = None
        if stats["samples"] > 0:
            loss = self._forward(batch)["loss"]
        local_bad = loss is None or not bool(torch.isfinite(loss.detach()).item())
        if self._all_ranks_any(local_bad):
            self.skipped_batches += 1
            ids = [s.id for s in batch["samples"]][:8]
            reason = "no readable sample" if loss is None else f"loss {loss.item()}" if local_bad else "another rank's loss was not finite"
            log.warning("skipping batch %d (step %d, samples %s): %s; %d batches skipped so far",
                        batch_idx, self.global_step, ids, reason, self.skipped_batches)
            self.log("train/skipped_batches", float(self.skipped_batches), on_step=True, batch_size=1)
            return self._zero_loss()
        self._window_has_data = True
        n = stats["samples"]
        self.log("train/loss", loss.detach(), on_step=True, prog_bar=True, batch_size=n)
        self.log("train/skipped_batches", float(self.skipped_batches), on_step=True, batch_size=n)
        self._log_throughput(stats)
        return loss

    def _zero_loss(self) -> torch.Tensor:
        """A loss of exactly 0 touching every trainable weight: backward gives finite zero gradients.

        Lightning refuses ``training_step`` returning None under DDP, and DDP needs every rank to
        run backward over the same weights; this does both.  If every micro-batch of the optimizer
        step was skipped, ``on_before_optimizer_step`` drops the (zero) gradients so AdamW leaves
        the weights and its moments untouched (no weight decay, no momentum drift either).
        """
        return torch.stack([p.sum() for p in self.model.parameters() if p.requires_grad]).sum() * 0.0

    def _log_throughput(self, stats: Mapping[str, Any]) -> None:
        now = time.perf_counter()
        if self._last_batch_end is not None:
            dt = max(now - self._last_batch_end, 1e-9)
            world = self.trainer.world_size if self.trainer is not None else 1
            n = stats["samples"]
            self.log_dict({"train/samples_per_s": world * n / dt, "train/audio_seconds_per_s": world * stats["audio_seconds"] / dt,
                           "train/tokens_per_s": world * stats["tokens"] / dt,
                           "train/truncated_samples": float(stats["truncated"]),
                           "train/peak_memory_mib": peak_memory_mib(self.device)}, on_step=True, batch_size=max(n, 1))
        self._last_batch_end = now

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        had_data, self._window_has_data = self._window_has_data, False
        if not had_data:  # every micro-batch of this step was skipped: no update at all
            self._last_batch_end = time.perf_counter()  # restart the throughput clock
            for p in self.model.parameters():
                p.grad = None
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))
        if not torch.isfinite(norm):
            # Same gradients on every rank after DDP's all-reduce, so every rank drops them together;
            # AdamW leaves parameters without a gradient untouched.
            self.skipped_grad_steps += 1
            log.warning("non-finite gradient norm at step %d: optimizer step skipped (%d so far)", self.global_step, self.skipped_grad_steps)
            for p in self.model.parameters():
                p.grad = None
            self.log("train/skipped_grad_steps", float(self.skipped_grad_steps), on_step=True, batch_size=1)
            return
        self.log("train/grad_norm", norm, on_step=True, batch_size=1)
        self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True, prog_bar=True, batch_size=1)

    # -------------------------------------------------------------------------- 3. validation
    def set_val_sources(self, source_of: Mapping[str, str]) -> None:
        """Dev sample id -> source: validation then also logs ``val/loss/<source>`` (batches hold one source each)."""
        self.val_source_of = dict(source_of)
        self.val_source_names = list(dict.fromkeys(source_of.values()))

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(2, dtype=torch.float64, device=self.device)
        # one (loss sum, tokens) row per source, in a fixed order, so ranks can sum them
        self._val_source_sums = torch.zeros(len(self.val_source_names), 2, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        if batch["stats"]["samples"] == 0:
            return
        out = self._forward(batch)
        if torch.isfinite(out["loss"]):
            n = out["n_targets"].double()
            self._val_sums += torch.stack([out["loss"].double() * n, n])
            sources = {self.val_source_of.get(s.id) for s in batch["samples"]}
            if self.val_source_names and len(sources) == 1 and None not in sources:
                row = self.val_source_names.index(sources.pop())
                self._val_source_sums[row] += torch.stack([out["loss"].double() * n, n])

    def on_validation_epoch_end(self) -> None:
        sums = self._val_sums if self._val_sums is not None else torch.zeros(2, dtype=torch.float64, device=self.device)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self._log_source_losses()
        if sums[1] > 0:
            value = (sums[0] / sums[1]).float()
            if self.trainer.sanity_checking:
                # Lightning drops self.log during the sanity check; record it anyway: it is the
                # before-training point of the validation-loss curve.
                if self.global_rank == 0 and self.loggers:
                    from toolkit.train.loggers import log_scalar

                    log_scalar(self.loggers, "val/loss", value.item(), self.global_step)
                    log.info("validation loss before step %d: %.4f", self.global_step, value.item())
            else:
                self.log("val/loss", value, sync_dist=False)
                if self.global_rank == 0:
                    log.info("validation loss at step %d: %.4f", self.global_step, value.item())
        if self.global_rank == 0 and self.num_val_generations > 0 and self.val_generation_samples:
            self._log_generations()

    def _log_source_losses(self) -> None:
        if not self.val_source_names:
            return
        sums = self._val_source_sums
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        values = {f"val/loss/{name}": float(sums[i, 0] / sums[i, 1])
                  for i, name in enumerate(self.val_source_names) if sums[i, 1] > 0}
        if self.trainer.sanity_checking:  # as val/loss: recorded by hand, Lightning drops self.log here
            if self.global_rank == 0:
                from toolkit.train.loggers import log_scalar

                for tag, value in values.items():
                    log_scalar(self.loggers, tag, value, self.global_step)
        elif values:
            self.log_dict(values, sync_dist=False)
        if values and self.global_rank == 0:
            log.info("validation loss per source at step %d: %s", self.global_step,
                     ", ".join(f"{k.split('/')[-1]} {v:.4f}" for k, v in values.items()))

    def _log_generations(self) -> None:
        from toolkit.audio import AudioError, load_audio
        from toolkit.metrics import consecutive_words_match

        convs, refs, ids = [], [], []
        for s in self.val_generation_samples[: self.num_val_generations]:
            try:
                msgs = [{**m, "audios": [{"audio": load_audio(a["audio"], start=a.get("start"), end=a.get("end")), "text": a.get("text")}
                                         for a in m.get("audios") or []]} for m in s.messages]
            except AudioError as err:
                log.warning("validation generation: skipping %s (%s)", s.id, err)
                continue
            convs.append(msgs)
            refs.append(s.label if s.label is not None else s.response)
            ids.append(s.id)
        if not convs:
            return
        outs = self.model.generate(convs, generation={"max_new_tokens": self.val_generation_max_new_tokens, "do_sample": False}, return_details=True)
        hits = [consecutive_words_match(o["text"], r) for o, r in zip(outs, refs)]
        acc = sum(hits) / len(hits)
        self.log("val/consecutive_words_accuracy", acc, rank_zero_only=True)
        lines = ["| id | prediction | reference | match |", "|---|---|---|---|"]
        for i, o, r, h in zip(ids, outs, refs, hits):
            clean = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            lines.append(f"| {i} | {clean(o['text'])} | {clean(r)} | {'yes' if h else 'no'} |")
        from toolkit.train.loggers import log_text

        log_text(self.loggers, "val/generations", "\n".join(lines), self.global_step,
                 rows=[[i, str(o["text"]), str(r), "yes" if h else "no"] for i, o, r, h in zip(ids, outs, refs, hits)],
                 columns=["id", "prediction", "reference", "match"])
        log.info("validation generations (step %d, consecutive-words accuracy %.3f):\n%s", self.global_step, acc, "\n".join(lines))

    # -------------------------------------------------------------------------- 4. optimizer
    def configure_optimizers(self) -> dict[str, Any]:
        from transformers import get_cosine_schedule_with_warmup

        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("nothing to train: every parameter is frozen (check adapter/llm.frozen/llm.lora in the config)")
        fused = True if params[0].is_cuda else None
        optimizer = torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, fused=fused)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=self.warmup_steps, num_training_steps=max(total, 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # -------------------------------------------------------------------------- 5. checkpoints
    def trainable_names(self) -> set[str]:
        return {f"model.{n}" for n in self.model.trainable_state_names()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        names = self.trainable_names()
        state = checkpoint.get("state_dict")
        if state:  # strategies that shard (deepspeed) keep their own format
            checkpoint["state_dict"] = {k: v for k, v in state.items() if k in names}
        checkpoint["desta"] = {"config": self.run_config, "skipped_batches": self.skipped_batches,
                               "skipped_grad_steps": self.skipped_grad_steps, "rng_per_rank": gather_rng_states()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict")
        if state:
            missing = sorted(self.trainable_names() - set(state))
            if missing:
                raise KeyError(f"checkpoint lacks trainable weights {missing[:6]}{'...' if len(missing) > 6 else ''}: it was made "
                               f"with another adapter/LoRA config; remove <exp>/checkpoints to start over or restore that config")
        extra = checkpoint.get("desta") or {}
        self.skipped_batches = int(extra.get("skipped_batches", 0))
        self.skipped_grad_steps = int(extra.get("skipped_grad_steps", 0))
        self._rng_to_restore = extra if ("rng_per_rank" in extra or "rng" in extra) else None

    def on_train_start(self) -> None:
        # RNG states go back after the sanity check and loader start-up, right before the next step.
        if self._rng_to_restore is not None:
            states = rng_states_for_rank(self._rng_to_restore, self.global_rank, self.trainer.world_size)
            if states is not None:
                set_rng_states(states)
            self._rng_to_restore = None
