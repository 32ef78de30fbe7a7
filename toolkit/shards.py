"""Sharded stage outputs that cannot lie: every shard records the run's identity, and readers check it.

Stages 4 (self-generation) and 6 (decoding) split their ids over ``--nshards n`` independent jobs
(:func:`toolkit.jsonl.shard_of`). Shard ``i`` of ``n`` writes ``<stem>.shard<i>of<n>.jsonl`` files
(``<stem>.jsonl`` when ``n == 1``) into its stage's output tree and, last, the marker
``<out_dir>/.done.shard<i>of<n>``: a JSON object holding

- ``identity``: what produced the rows (``config_sha256`` of the stage settings that shape an answer,
  ``model_sha256`` of the weights, ``nshards``), from :func:`make_identity`;
- ``outputs``: every file the shard wrote, relative to ``out_dir``, with its row count.

A shard is done only when its marker exists, names the current identity, and every listed file
still has the recorded number of rows (:func:`shard_status`), so a rerun skips it without loading a
model, and a marker left behind by another configuration, or a file cut short after its marker was
written, never counts. Readers (training reads stage 4's rows, scoring merges stage 6's) take a set of
shard files only through :func:`complete_set`, which refuses a set with a missing or stale shard,
markers that disagree, or files from two shard counts, each time naming the files and the fix.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.config import ConfigError
from toolkit.files import atomic_write_text

SHARD_FILE = re.compile(r"^(?P<stem>.+)\.shard(?P<i>\d+)of(?P<n>\d+)\.jsonl$")
MARKER = re.compile(r"^\.done\.shard(?P<i>\d+)of(?P<n>\d+)$")
# Weight files larger than this are fingerprinted from their size and three 4 MiB samples: hashing an
# 8B backbone (16 GB) in every shard job would cost a minute each, and a retrained or swapped
# checkpoint changes its size or its sampled bytes.
FULL_HASH_LIMIT = 256 << 20
SAMPLE = 4 << 20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf", ".json", ".model")


class ShardError(ConfigError):
    """A shard set that cannot be trusted; the message names the files and the fix."""


def output_name(stem: str, shard: int, nshards: int) -> str:
    """``<stem>.jsonl`` for one shard, ``<stem>.shard<i>of<n>.jsonl`` otherwise."""
    return f"{stem}.jsonl" if nshards == 1 else f"{stem}.shard{shard}of{nshards}.jsonl"


def marker_path(out_dir: str | os.PathLike, shard: int, nshards: int) -> Path:
    return Path(out_dir) / f".done.shard{shard}of{nshards}"


def canonical_sha256(value: Any) -> str:
    """sha256 of a JSON value with sorted keys: equal settings hash equal whatever their order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def file_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (large files: of their size and three samples, see FULL_HASH_LIMIT)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= FULL_HASH_LIMIT:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(str(size).encode())
            for offset in (0, size // 2, size - SAMPLE):
                f.seek(offset)
                digest.update(f.read(SAMPLE))
    return digest.hexdigest()


def model_fingerprint(path: str | os.PathLike | None) -> str | None:
    """Fingerprint of a model file or directory (weights, config and tokenizer files); None when ``path``
    is not on this disk (a hub id or an endpoint: then only its name, in the config hash, identifies it)."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return file_fingerprint(path)
    if not path.is_dir():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return canonical_sha256({str(p.relative_to(path)): file_fingerprint(p) for p in files})


def make_identity(stage: str, config: Any, model_path: str | os.PathLike | None, nshards: int,
                  model_sha256: str | None = None) -> dict[str, Any]:
    """The identity a stage's shards carry: what shapes a row (config), which weights, how it was split."""
    return {"stage": stage, "config_sha256": canonical_sha256(config),
            "model_sha256": model_sha256 if model_sha256 is not None else model_fingerprint(model_path),
            "nshards": nshards}


def count_rows(path: str | os.PathLike) -> int:
    """Complete lines of a JSONL file (a partial last line left by a kill is not a row)."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.endswith(b"\n") and line.strip())


def read_marker(path: str | os.PathLike) -> dict[str, Any] | None:
    """A marker's content; None for a missing file, an empty pre-identity marker or a torn one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "identity" in data else None


def write_marker(out_dir: str | os.PathLike, shard: int, nshards: int, identity: dict[str, Any],
                 outputs: Iterable[str | os.PathLike]) -> Path:
    """Record shard ``shard`` of ``nshards`` as done: its identity and every output's row count (atomic)."""
    out_dir = Path(out_dir)
    record = {"identity": identity,
              "outputs": {str(Path(p).resolve().relative_to(out_dir.resolve())): count_rows(p) for p in outputs}}
    target = marker_path(out_dir, shard, nshards)
    return atomic_write_text(target, json.dumps(record, indent=2))


def clear_marker(out_dir: str | os.PathLike, shard: int, nshards: int) -> None:
    """Called as a shard starts work: from here until it finishes, it is not done."""
    marker_path(out_dir, shard, nshards).unlink(missing_ok=True)


def _differences(previous: dict[str, Any], identity: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(previous) | set(identity)) if previous.get(k) != identity.get(k)]
    return ", ".join(f"{k} {str(previous.get(k))[:12]} -> {str(identity.get(k))[:12]}" for k in keys)


@dataclass
class ShardStatus:
    shard: int
    nshards: int
    done: bool
    reason: str


def shard_status(out_dir: str | os.PathLike, shard: int, nshards: int, identity: dict[str, Any]) -> ShardStatus:
    """Whether shard ``shard`` of ``nshards`` finished for ``identity`` (checked from files, no model)."""
    out_dir = Path(out_dir)
    marker = marker_path(out_dir, shard, nshards)
    record = read_marker(marker)
    if record is None:
        reason = "not finished" if not marker.exists() else f"{marker} has no identity"
        return ShardStatus(shard, nshards, False, reason)
    if record["identity"] != identity:
        reason = f"stale marker {marker} ({_differences(record['identity'], identity)})"
        return ShardStatus(shard, nshards, False, reason)
    for name, rows in record.get("outputs", {}).items():
        path = out_dir / name
        if not path.is_file():
            return ShardStatus(shard, nshards, False, f"{path} is gone (its marker {marker} lists {rows} rows)")
        found = count_rows(path)
        if found != rows:
            return ShardStatus(shard, nshards, False, f"{path} has {found} rows, its marker {marker} says {rows}")
    return ShardStatus(shard, nshards, True, "done")


def shard_counts(out_dir: str | os.PathLike) -> dict[int, list[Path]]:
    """Shard counts present in a stage output tree: ``{n: [markers and shard files of that count]}``.

    Unsharded outputs (``<stem>.jsonl``) only count through their ``.done.shard0of1`` marker, so a
    merged ``decode.jsonl`` beside its shards is not taken for a second run."""
    out_dir = Path(out_dir)
    found: dict[int, list[Path]] = {}
    if not out_dir.is_dir():
        return found
    for path in sorted(out_dir.rglob("*")):
        m = MARKER.match(path.name) if path.parent == out_dir else SHARD_FILE.match(path.name)
        if m:
            found.setdefault(int(m["n"]), []).append(path)
    return found


def refuse_other_counts(out_dir: str | os.PathLike, nshards: int, identity: dict[str, Any], stage_cmd: str,
                        start_over: str) -> list[int]:
    """Refuse to split a run of this same identity over a new ``--nshards``; returns stale counts.

    Ids are assigned by ``shard_of(id, n)``, so shard ``i`` of 4 and shard ``i`` of 2 hold different ids: mixing
    them would write some ids twice and others never. Counts whose markers all name another identity are
    returned (the caller starts those over or refuses, as its stage allows)."""
    other: list[int] = []
    for n, paths in shard_counts(out_dir).items():
        if n == nshards:
            continue
        same = {i for i in range(n) if (r := read_marker(marker_path(out_dir, i, n))) and
                {**r["identity"], "nshards": nshards} == identity}
        started = [p for p in paths if SHARD_FILE.match(p.name) or p.name.endswith("of1")]
        if same:
            missing = [i for i in range(n) if not shard_status(out_dir, i, n, {**identity, "nshards": n}).done]
            raise ShardError(
                f"{out_dir} holds a {n}-shard run of this same config and model (shards done: {sorted(same)}; "
                f"not finished: {missing}), and --nshards is now {nshards}: shard i of {nshards} holds other ids "
                f"than shard i of {n}, so the sets would overlap. Rerun with --nshards {n} ({stage_cmd} --nshards {n}; "
                f"only the unfinished shards run), or {start_over}.")
        if started:
            other.append(n)
    return other


def _files_of(directory: Path, stem: str, n: int) -> list[Path]:
    return [directory / output_name(stem, i, n) for i in range(n)]


def complete_set(directory: str | os.PathLike, stem: str, out_dir: str | os.PathLike | None = None,
                 identity: dict[str, Any] | None = None, stage: str = "the stage") -> list[Path]:
    """The files of one finished, consistent shard set of ``<directory>/<stem>*.jsonl``.

    ``out_dir`` holds the markers (default ``directory``). Refuses, naming files and the fix: shard files of
    two shard counts; a shard without a marker or whose file no longer has its recorded rows; markers that
    name different identities (or another than ``identity`` when given).
    """
    directory = Path(directory)
    out_dir = Path(out_dir) if out_dir is not None else directory
    counts = sorted({int(m["n"]) for p in directory.glob(f"{glob.escape(stem)}.shard*of*.jsonl")
                     if (m := SHARD_FILE.match(p.name)) and m["stem"] == stem})
    single = directory / f"{stem}.jsonl"
    # <stem>.jsonl is a one-shard run unless it is the merge of the shard files beside it.
    if single.is_file() and (not counts or not (directory / f"{stem}.merged.json").is_file()):
        counts = [1] + counts
    if not counts:
        raise ShardError(f"{single}: no such file and no {stem}.shard<i>of<n>.jsonl beside it; run {stage} first")
    if len(counts) > 1:
        listing = "; ".join(f"{n} shard{'s' if n > 1 else ''}: "
                            f"{', '.join(p.name for p in _files_of(directory, stem, n) if p.exists())}" for n in counts)
        raise ShardError(f"{directory}: '{stem}' has shard files from {len(counts)} different --nshards runs "
                         f"({listing}). Their ids overlap, so reading them together counts rows twice. Keep one run: "
                         f"delete the files of the other shard count (and their {out_dir}/.done.shard<i>of<n> "
                         f"markers), then rerun {stage} with the count you kept.")
    n = counts[0]
    problems, identities = [], {}
    for i, path in enumerate(_files_of(directory, stem, n)):
        marker = marker_path(out_dir, i, n)
        record = read_marker(marker)
        if record is None:
            problems.append(f"shard {i}: {marker} is missing (the shard did not finish)")
            continue
        identities[i] = record["identity"]
        if identity is not None and record["identity"] != identity:
            problems.append(f"shard {i}: stale marker {marker} ({_differences(record['identity'], identity)})")
            continue
        rel = str(path.resolve().relative_to(out_dir.resolve()))
        rows = record.get("outputs", {}).get(rel)
        if rows is None:
            problems.append(f"shard {i}: {marker} does not list {rel}")
        elif not path.is_file():
            problems.append(f"shard {i}: {path} is gone")
        elif count_rows(path) != rows:
            problems.append(f"shard {i}: {path} has {count_rows(path)} rows, its marker says {rows}")
    distinct = {json.dumps(v, sort_keys=True) for v in identities.values()}
    if identity is None and len(distinct) > 1:
        groups: dict[str, list[int]] = {}
        for i, v in identities.items():
            groups.setdefault(json.dumps(v, sort_keys=True), []).append(i)
        problems.append("the markers name different runs (" + "; ".join(
            f"shards {ids}: config {json.loads(k)['config_sha256'][:12]}, "
            f"model {str(json.loads(k)['model_sha256'])[:12]}"
            for k, ids in groups.items()) + "): some shards were written with other settings or weights")
    if problems:
        raise ShardError(f"{directory}: the {n}-shard set of '{stem}' cannot be used: " + "; ".join(problems)
                         + f". Rerun {stage} with --nshards {n}: it reruns exactly the shards that are not done "
                         f"for the current config and model.")
    return _files_of(directory, stem, n)


def iter_unique_rows(files: Iterable[str | os.PathLike]) -> Iterator[dict[str, Any]]:
    """Rows of several files, refusing an id seen twice (two shard sets read together, or a copied file)."""
    from toolkit.jsonl import iter_jsonl

    seen: dict[str, str] = {}
    for path in files:
        for row in iter_jsonl(path):
            key = str(row.get("id"))
            if key in seen:
                raise ShardError(f"id '{key}' is in both {seen[key]} and {path}: these files overlap; "
                                 f"keep one shard set")
            seen[key] = str(path)
            yield row


def merge_set(directory: str | os.PathLike, stem: str, out_dir: str | os.PathLike | None = None,
              identity: dict[str, Any] | None = None, stage: str = "the stage") -> Path:
    """Merge a complete shard set into ``<directory>/<stem>.jsonl`` (atomic); ``<stem>.merged.json`` records
    the markers it came from, so a later change to any shard is noticed and the merge is redone."""
    from toolkit.jsonl import write_jsonl

    directory = Path(directory)
    files = complete_set(directory, stem, out_dir, identity, stage)
    merged = directory / f"{stem}.jsonl"
    if files == [merged]:
        return merged
    out_dir = Path(out_dir) if out_dir is not None else directory
    n = len(files)
    sources = {str(marker_path(out_dir, i, n).name): read_marker(marker_path(out_dir, i, n)) for i in range(n)}
    record = directory / f"{stem}.merged.json"
    previous = json.loads(record.read_text()) if record.is_file() else None
    if merged.is_file() and previous == sources:
        return merged
    write_jsonl(merged, iter_unique_rows(files))
    record.write_text(json.dumps(sources, indent=2))
    return merged


def resolve_files(spec: str | os.PathLike | list, what: str = "jsonl") -> list[Path]:
    """:func:`toolkit.jsonl.jsonl_files` for outputs of a sharded stage: a path or glob whose files come with
    shard markers is checked with :func:`complete_set`, and ``dir/<stem>.jsonl`` of a sharded run means its
    shard files. Files without markers beside them (published AQA5M chunks) pass unchanged."""
    from toolkit.jsonl import jsonl_files

    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[Path] = []
    for item in specs:
        path = Path(str(item))
        if not any(c in str(item) for c in "*?[") and not path.is_file() and shard_counts(path.parent):
            out += complete_set(path.parent, path.name.removesuffix(".jsonl"), stage=f"the stage writing {what}")
            continue
        files = jsonl_files(item, what)
        checked: dict[tuple[Path, str], list[Path]] = {}
        for f in files:
            m = SHARD_FILE.match(f.name)
            stem = m["stem"] if m else f.name.removesuffix(".jsonl")
            if not m and not any(f.parent.glob(".done.shard*of*")):
                out.append(f)  # not a sharded stage's output (e.g. the published AQA5M chunks)
                continue
            key = (f.parent, stem)
            if key not in checked:
                checked[key] = complete_set(f.parent, stem, stage=f"the stage writing {what}")
                out += checked[key]
    return list(dict.fromkeys(out))


def remove_count(out_dir: str | os.PathLike, nshards: int) -> list[Path]:
    """Delete every marker and shard file of an ``nshards`` run under ``out_dir`` (stale outputs that a stage
    regenerates anyway, e.g. predictions of a replaced model); returns what was removed."""
    removed = []
    for path in shard_counts(out_dir).get(nshards, []):
        m = SHARD_FILE.match(path.name)
        extra = [path.with_name(f"{m['stem']}.shard{m['i']}of{m['n']}.meta.json"),
                 path.with_name(f"{m['stem']}.merged.json")] if m else []
        for p in [path, *extra]:
            if p.exists():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def check_unique_names(dirs: list[str], key: str) -> None:
    """Outputs are named after each directory's last path part: two dirs with one name would share a file."""
    names: dict[str, str] = {}
    for d in dirs:
        name = Path(d).name
        if name in names:
            raise SystemExit(f"{key}: '{names[name]}' and '{d}' both end in '{name}', so their outputs would share one file "
                             f"and resume would skip the second's rows; give the sets distinct names (e.g. a data.prefix)")
        names[name] = d
