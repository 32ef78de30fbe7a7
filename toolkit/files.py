"""Files that are written whole or not at all: the one tmp-then-rename helper every stage uses.

A reader (a resumed stage, a scorer, another rank) must never see half a file: each writer puts its
bytes into ``<name>.tmp`` beside the target and renames it over the target only once it is complete
(``os.replace`` is atomic on one filesystem). A writer that fails or is interrupted removes its
``.tmp`` and leaves the old target as it was.  ``durable=True`` also fsyncs the file and its
directory, so the new name survives a power cut (checkpoints).

    with atomic_write(path) as f:          # text; ``"wb"`` for bytes
        f.write(...)
    with atomic_path(path) as tmp:         # for writers that want a path (kaldiio, soundfile, copyfile)
        writer(tmp)
    atomic_write_text(path, text)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename inside ``directory`` durable (a rename alone can reach the disk before the data)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not open directories; the rename is then as durable as they allow
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tmp_path_of(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """The temporary name beside ``path``: ``<name>.tmp``, or ``<stem>.tmp<suffix>`` with ``keep_suffix``
    (for writers that pick the format from the extension, like soundfile)."""
    path = Path(path)
    return path.with_name(f"{path.stem}{TMP_SUFFIX}{path.suffix}" if keep_suffix else path.name + TMP_SUFFIX)


@contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; renamed over ``path`` when the block ends, removed if it raises."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_of(target, keep_suffix)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:  # a kill signal raised as an exception, a full disk, an error in the writer
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", durable: bool = False,
                 encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """``open(path, mode)`` whose result appears under ``path`` only once the block ends without error."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, durable=durable) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_write(path) as f:
        f.write(text)
    return Path(path)
