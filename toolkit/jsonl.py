"""Append-only JSONL outputs that survive a kill, and id sharding: how self-generation and decoding scale and resume.

A stage appends one line per finished row and fsyncs after every batch. On restart,
:func:`read_done_ids` cuts off a partial last line (the kill happened mid-write) and returns the
ids already written, which the stage skips. No id is written twice and at most the batch in flight
is lost.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def stable_hash(text: str) -> int:
    """The one hash of the toolkit that is the same in every process, machine and Python version (``hash()``
    is salted): the first 48 bits of the SHA-1 of ``text``.  Splits, shards and seeded draws derive from it."""
    import hashlib

    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def shard_of(item_id: str, nshards: int) -> int:
    """Stable shard of an id: ``--shard i --nshards n`` jobs on many nodes split self-generation or
    decoding with no coordination, each id in exactly one shard."""
    return stable_hash(item_id) % nshards


def read_done_ids(path: str | os.PathLike, key: str = "id") -> set[str]:
    """Ids already in ``path``; a partial last line left by an interrupted run is removed first."""
    path = Path(path)
    if not path.exists():
        return set()
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            log.warning("%s: dropping a partial last line left by an interrupted run (%d bytes)", path, len(data) - cut)
            f.truncate(cut)
            data = data[:cut]
    ids = set()
    for lineno, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise TextFileError(f"{path}:{lineno}: not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                                f"this stage writes UTF-8 only: move the file away or fix the line") from None
        if line.strip():
            try:
                ids.add(json.loads(line)[key])
            except (json.JSONDecodeError, KeyError) as err:
                raise ValueError(f"{path}:{lineno}: not a row of this stage ({err}); move the file away or fix the line") from err
    return ids


class TextFileError(ValueError):
    """A text file (Kaldi table, JSONL) that cannot be read as UTF-8 lines; the message names the file and line."""


class JsonlError(TextFileError):
    """A JSONL line that does not parse; the message names the file and line."""


def read_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of a UTF-8 file, without the line break.

    Every table and manifest is read through this, so a byte that is not UTF-8 (a Latin-1 or GBK
    transcript) fails naming the file, the line and the column instead of a bare ``UnicodeDecodeError``.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise TextFileError(
                    f"{path}:{lineno}: not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}: "
                    f"{raw[max(0, err.start - 20):err.start + 10]!r}); every table and manifest must be UTF-8: "
                    f"re-encode the file (e.g. iconv -f latin1 -t utf-8 {Path(path).name} > fixed) or fix that line"
                ) from None
            yield lineno, text.rstrip("\n").rstrip("\r")


def numbered_rows(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """``(line number, row)`` of every non-blank line of a JSONL file; a bad line fails naming the file and line."""
    for lineno, line in read_lines(path):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise JsonlError(f"{path}:{lineno}: not valid JSON ({err}); fix or remove that line") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file (blank lines skipped); a bad line fails naming the file and line."""
    for _, row in numbered_rows(path):
        yield row


def json_line(row: Any) -> str:
    """One JSONL line (no newline): UTF-8 kept as is, values JSON cannot hold (paths, numpy scalars) as text."""
    return json.dumps(row, ensure_ascii=False, default=str)


def jsonl_files(spec: str | os.PathLike | list, what: str = "jsonl") -> list[Path]:
    """Files named by a path, a glob (``dump/selfgen/train*.jsonl``: shards, chunks) or a list of them."""
    import glob

    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    files: list[Path] = []
    for item in specs:
        item = str(item)
        matches = sorted(glob.glob(item)) if any(c in item for c in "*?[") else ([item] if Path(item).is_file() else [])
        if not matches:
            raise FileNotFoundError(f"{what}: no file matches '{item}'; run the stage that writes it, or fix the path")
        files += [Path(m) for m in matches]
    return files


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSONL atomically (:func:`toolkit.files.atomic_write`); returns the row count.

    ``rows`` may be a generator that raises: the target is then left as it was.
    """
    from toolkit.files import atomic_write

    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json_line(row) + "\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a JSONL file (see :func:`iter_jsonl`)."""
    return list(iter_jsonl(path))


class AppendOnlyJsonl:
    """``with AppendOnlyJsonl(path) as out: out.write_batch(rows)``: one fsync per batch."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = None

    def __enter__(self) -> "AppendOnlyJsonl":
        self._f = open(self.path, "a", encoding="utf-8")
        return self

    def write_batch(self, rows: Iterable[dict[str, Any]]) -> None:
        lines = [json_line(r) for r in rows]
        if lines:
            self._f.write("\n".join(lines) + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())

    def __exit__(self, *exc) -> None:
        self._f.close()
