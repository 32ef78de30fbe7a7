"""Checkpoint files that survive kills, power loss and full disks, and the choice of the one to resume from.

1. :func:`write_checkpoint`: ``torch.save`` into ``<name>.tmp`` next to the target, ``fsync`` it, rename it
   over the target and ``fsync`` the directory, so the name always points at a complete file, even after
   a power cut (a rename alone can reach the disk before the data does).  A failed write removes its
   ``.tmp``; a full disk (ENOSPC, or a quota: EDQUOT) becomes one :class:`CheckpointError` paragraph.
2. :class:`AtomicCheckpointIO`: Lightning's checkpoint plugin writing through it.
3. :func:`resume_checkpoint`: before a run resumes, ``.tmp`` files a killed run left are removed and
   ``last.ckpt`` is opened; a torn or unreadable one is named, moved aside to ``last.ckpt.torn`` and the
   newest good ``step<N>.ckpt`` is used instead.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from toolkit.files import TMP_SUFFIX, atomic_write, tmp_path_of

log = logging.getLogger(__name__)

TORN_SUFFIX = ".torn"
LAST = "last.ckpt"
_STEP = re.compile(r"^step(\d+)\.ckpt$")
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or resumed from; the message names the file and the fix."""


def _disk_full_message(path: Path, tmp: Path, err: OSError) -> str:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return (f"cannot write checkpoint {path}: the disk is full ({os.strerror(err.errno)}; {free} on the filesystem "
            f"of {path.parent}). Nothing partial was left ({tmp.name} was removed) and the checkpoints already written "
            f"are intact. Free space there (older runs, dump/ or exp/ directories), or point train.output_dir at a disk "
            f"with room, then rerun the same command: training resumes from the newest checkpoint in {path.parent}.")


def write_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``checkpoint`` to ``path`` atomically and durably (see the module docstring)."""
    import torch

    path = Path(path)
    try:  # a failed write (a kill signal raised as an exception, a full disk, a pickling error) leaves no .tmp
        with atomic_write(path, "wb", durable=True) as f:
            torch.save(checkpoint, f)
    except OSError as err:
        if err.errno in _DISK_FULL:
            raise CheckpointError(_disk_full_message(path, tmp_path_of(path), err)) from err
        raise


def prune_steps(checkpoint_dir: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest ``step<N>.ckpt`` files; returns what was deleted."""
    steps = sorted((p for p in Path(checkpoint_dir).glob("step*.ckpt") if _step_of(p) >= 0), key=_step_of, reverse=True)
    for old in steps[keep:]:
        old.unlink(missing_ok=True)
    return steps[keep:]


class AtomicCheckpointIO:
    """Lightning's ``CheckpointIO`` plugin whose saves go through :func:`write_checkpoint`.

    After a ``step<N>.ckpt`` is safely written, only the ``keep`` newest step files stay (Lightning's
    own top-k needs a monitored metric; here the newest win), so a torn ``last.ckpt`` has fallbacks.
    Lightning calls the plugin on global rank 0 only.
    """

    @staticmethod
    def make(keep: int = 2) -> Any:
        from lightning.pytorch.plugins.io import TorchCheckpointIO

        class _Atomic(TorchCheckpointIO):
            def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
                if "://" in str(path):  # remote storage: fsspec's own transaction
                    return super().save_checkpoint(checkpoint, path, storage_options)
                write_checkpoint(checkpoint, path)
                if _step_of(Path(path)) >= 0:
                    prune_steps(Path(path).parent, keep)

        return _Atomic()


def _step_of(path: Path) -> int:
    m = _STEP.match(path.name)
    return int(m.group(1)) if m else -1


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is not a usable checkpoint (None: it loads and has the loop state Lightning needs)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # as Lightning loads it
    except Exception as err:  # truncated zip, zero bytes, garbage: torch names the broken part
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if not isinstance(ckpt, dict) or "global_step" not in ckpt or "loops" not in ckpt:
        return "it holds no training state (no global_step/loops)"
    return None


def resume_checkpoint(checkpoint_dir: str | os.PathLike, may_modify: bool = True) -> Path | None:
    """The checkpoint a restarted run resumes from: ``last.ckpt`` or, if it is torn, the newest good ``step<N>.ckpt``.

    ``may_modify`` (rank 0 only, so DDP ranks never race on the files): remove leftover ``.tmp`` files
    and move a torn ``last.ckpt`` aside to ``last.ckpt.torn``.  No checkpoint at all: None (a fresh
    start).  Checkpoints present but none readable: :class:`CheckpointError` naming each and the fix.
    """
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return None
    if may_modify:
        for tmp in sorted(root.glob(f"*{TMP_SUFFIX}")):
            log.warning("removing %s: a partial checkpoint left by a run killed while writing it", tmp)
            tmp.unlink(missing_ok=True)
    steps = sorted((p for p in root.glob("step*.ckpt") if _step_of(p) >= 0), key=_step_of, reverse=True)
    candidates = ([root / LAST] if (root / LAST).is_file() else []) + steps
    bad: list[str] = []
    for path in candidates:
        reason = _unreadable(path)
        if reason is None:
            if bad:
                log.warning("resuming from %s instead (the newest readable checkpoint)", path)
            return path
        bad.append(f"{path} ({reason})")
        log.error("checkpoint %s is torn or unreadable (%s); it is not resumed from", path, reason)
        if may_modify and path.name == LAST:
            aside = path.with_name(path.name + TORN_SUFFIX)
            os.replace(path, aside)
            log.error("moved %s aside to %s (kept for inspection; delete it when done)", path, aside.name)
    if bad:
        raise CheckpointError(
            f"no readable checkpoint to resume from in {root}: {'; '.join(bad)}. The files are torn (a crash or full "
            f"disk while they were written, before this toolkit fsynced them) or not checkpoints. Move {root} aside "
            f"(or delete it) to train from scratch, or restore a good copy of one of them.")
    return None
