"""Results files: ``RESULTS.md`` (one markdown table per eval set) and ``results.json``.

``results.json`` is the machine-readable form that ``toolkit.bin.gather_results`` reads::

    {"tag": "desta25_tiny", "results": [{"set", "metric", "value", "count", "judge", "extra"}, ...]}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit.files import atomic_write_text
from toolkit.score.base import ResultRow


def format_value(value: float | None) -> str:
    """Two decimals; ``-`` for a missing (NaN) value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2f}"


def _notes(extra: dict[str, Any]) -> str:
    keep = []
    for key in ("skipped", "decode_errors", "parse_failure_rate", "unparsed", "empty_references_skipped", "unsupported_instructions_skipped",
                "normalizer", "variant", "sentence_splitter", "strip_prefixes", "judge_protocol"):
        if key in extra:
            val = extra[key]
            keep.append(f"{key}: {format_value(val) if isinstance(val, float) else val}")
    return "; ".join(keep).replace("|", "/")


def base_set(name: str) -> str:
    """The eval set of a (possibly broken-down) set name: ``mmau[task=sound]`` -> ``mmau``."""
    return name.split("[", 1)[0]


def render_markdown(results: Sequence[ResultRow], tag: str) -> str:
    """RESULTS.md text: a title, then per eval set a table ``set | metric | value | count | judge | notes``."""
    lines = [f"# Results: {tag}", "",
             "Values are percentages (WER/CER: lower is better), except `judge_rating[...]` (mean 1-5 rating).", ""]
    sets: list[str] = []
    for r in results:
        if base_set(r.set) not in sets:
            sets.append(base_set(r.set))
    for name in sets:
        lines += [f"## {name}", "", "| set | metric | value | count | judge | notes |", "|---|---|---:|---:|---|---|"]
        for r in results:
            if base_set(r.set) == name:
                lines.append(f"| {r.set} | {r.metric} | {format_value(r.value)} | {r.count} | {r.judge or '-'} | {_notes(r.extra)} |")
        lines.append("")
    return "\n".join(lines)


def write_results(results: Sequence[ResultRow], out_dir: str | os.PathLike, tag: str) -> tuple[Path, Path]:
    """Write ``RESULTS.md`` and ``results.json`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "RESULTS.md", out / "results.json"
    atomic_write_text(js, json.dumps({"tag": tag, "results": [r.to_dict() for r in results]}, indent=1,
                                     ensure_ascii=False))
    atomic_write_text(md, render_markdown(results, tag))
    return md, js


def read_results(path: str | os.PathLike) -> tuple[str, list[ResultRow]]:
    """(tag, rows) of a ``results.json`` (or of the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results.json; run the scoring stage (toolkit.bin.score) for that experiment")
    data = json.loads(path.read_text(encoding="utf-8"))
    return data.get("tag") or path.parent.name, [ResultRow.from_dict(r) for r in data["results"]]
