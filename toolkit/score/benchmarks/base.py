"""The benchmark loader interface, the manifest row, and a reader for Hugging Face dataset folders.

A loader yields eval manifest rows (the shared contract)::

    {"id", "dataset", "audio", "text", "prompt", "reference", "metric", "choices", ...extra}

``audio`` is a file path (a ``wav.scp`` entry).  Hugging Face datasets keep audio as encoded bytes
inside parquet/arrow files; :func:`read_hf_table` reads those folders with ``pyarrow`` (no
``datasets`` package needed) and :func:`audio_cell_to_file` writes each clip once to ``audio_dir``.
"""

from __future__ import annotations

import abc
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from toolkit.files import atomic_write
from toolkit.jsonl import write_jsonl
from toolkit.registry import Registry


class BenchmarkError(ValueError):
    """A benchmark copy that is missing, incomplete or in an unexpected format."""


class Benchmark(abc.ABC):
    """Base class: ``rows()`` yields manifest rows; ``write_manifest(path)`` writes them as JSONL."""

    @abc.abstractmethod
    def rows(self) -> Iterator[dict[str, Any]]:
        """The benchmark's manifest rows, one per question."""

    def write_manifest(self, path: str | os.PathLike) -> int:
        """Write the manifest (atomically); returns the number of rows.  Duplicate ids fail."""
        seen: set[str] = set()

        def checked() -> Iterator[dict[str, Any]]:  # raising here leaves the old manifest as it was
            for row in self.rows():
                if row["id"] in seen:
                    raise BenchmarkError(f"{type(self).__name__}: duplicate id {row['id']!r}; ids must be unique per manifest")
                seen.add(row["id"])
                yield row
            if not seen:
                raise BenchmarkError(f"{type(self).__name__}: the benchmark copy produced no rows; check root")

        return write_jsonl(path, checked())


BENCHMARKS = Registry("benchmark", base=Benchmark, variable="BENCHMARKS", components="toolkit.score.benchmarks")


def build_benchmark(node: Mapping[str, Any]) -> Benchmark:
    """Build a loader from ``{name: mmau, root: ..., ...}``."""
    return BENCHMARKS.build(node, where="benchmark")


def manifest_row(
    id: str, dataset: str, audio: str | None, prompt: str, reference: Any, metric: str,
    choices: list[str] | None = None, text: str | None = None, **extra: Any,
) -> dict[str, Any]:
    """One eval manifest row in the shared field order; ``extra`` fields follow."""
    row = {"id": id, "dataset": dataset, "audio": audio, "text": text, "prompt": prompt,
           "reference": reference, "metric": metric, "choices": choices}
    row.update(extra)
    return row


def safe_id(text: str) -> str:
    """An utterance id usable as a Kaldi key and a file name (no blanks or slashes)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "utt"


def require_dir(path: str | os.PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise BenchmarkError(f"{what}: directory not found: {path}. Point it at your local copy of the benchmark")
    return path


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ImportError("reading Hugging Face dataset folders needs pyarrow: pip install pyarrow") from err
    return pyarrow


def read_hf_table(path: str | os.PathLike, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset stored locally, as plain dicts.

    Accepted layouts (searched under ``path``):
      * parquet files (``data/test-00000-of-00001.parquet``, ``<subset>/test-*.parquet`` ...),
        filtered to file names starting with ``split`` when given and such files exist;
      * a ``Dataset.save_to_disk`` folder (``state.json`` + ``data-*.arrow``), or a
        ``DatasetDict`` one (``dataset_dict.json`` + one such folder per split; ``split``
        picks one, default ``test`` if present, else the only one).
    """
    pa = _pyarrow()
    root = Path(path).expanduser()
    if not root.exists():
        raise BenchmarkError(f"dataset folder not found: {root}")
    if (root / "dataset_dict.json").is_file():
        splits = json.loads((root / "dataset_dict.json").read_text())["splits"]
        chosen = split or ("test" if "test" in splits else (splits[0] if len(splits) == 1 else None))
        if chosen not in splits:
            raise BenchmarkError(f"{root}: split {chosen!r} not in {splits}; set split:")
        root = root / chosen
    if (root / "state.json").is_file():
        state = json.loads((root / "state.json").read_text())
        tables = []
        for entry in state["_data_files"]:
            with pa.memory_map(str(root / entry["filename"])) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return table.to_pylist()
    files = sorted(p for p in ([root] if root.is_file() else root.rglob("*.parquet")))
    if split:
        picked = [p for p in files if p.name.startswith(split)]
        files = picked or files
    if not files:
        raise BenchmarkError(f"{root}: no parquet files and no save_to_disk folder (state.json) found")
    rows: list[dict[str, Any]] = []
    for p in files:
        rows.extend(pa.parquet.read_table(p).to_pylist())
    return rows


_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"), (b"\xff\xf3", ".mp3"))


def audio_cell_to_file(cell: Any, audio_dir: str | os.PathLike, utt_id: str, base_dir: str | os.PathLike | None = None) -> str:
    """Path of the audio of a dataset cell, writing embedded bytes to ``audio_dir/<utt_id><ext>``.

    A cell is ``{"bytes": b"...", "path": "x.wav"}`` (HF ``Audio`` feature) or a plain path.  A
    file already written is kept (re-running is cheap).  With no bytes, the path is resolved
    against ``base_dir`` and must exist.
    """
    if isinstance(cell, str):
        cell = {"bytes": None, "path": cell}
    if not isinstance(cell, Mapping):
        raise BenchmarkError(f"{utt_id}: audio cell of unexpected type {type(cell).__name__}")
    data, src = cell.get("bytes"), cell.get("path")
    if data:
        ext = Path(src).suffix.lower() if src and Path(src).suffix else ""
        if not ext:
            ext = next((e for magic, e in _MAGIC if data.startswith(magic)), ".wav")
        out = Path(audio_dir) / f"{utt_id}{ext}"
        if not out.is_file():
            with atomic_write(out, "wb") as f:
                f.write(data)
        return str(out.resolve())
    if src:
        p = Path(src)
        if not p.is_absolute() and base_dir is not None:
            p = Path(base_dir) / p
        if p.is_file():
            return str(p.resolve())
    raise BenchmarkError(f"{utt_id}: audio has no bytes and its path {src!r} does not exist")
