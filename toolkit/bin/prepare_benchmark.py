"""Stage 1 of the eval recipe: local benchmark copies -> the eval manifests that decoding reads.

    python -m toolkit.bin.prepare_benchmark --config conf/eval.yaml [--force] [key=value ...]

The ``benchmarks:`` section is a list; each entry is a benchmark loader node (``name`` + that
loader's arguments, see ``toolkit/score/benchmarks/``) plus ``set_dir``, the set directory that
gets the manifest::

    benchmarks:
      - {name: mmau, json_path: downloads/MMAU/mmau-test-mini.json, audio_root: downloads/MMAU, set_dir: data/mmau_test_mini}
      - {name: dynamic_superb, root: downloads/Dynamic-SUPERB/SpeakerCounting_LibriTTS-TestClean,
         audio_dir: data/audio/dynamic_superb, set_dir: data/dynamic_superb}
      - {name: dynamic_superb, root: ..., audio_dir: ..., set_dir: data/dynamic_superb}   # same set: one manifest

Each set directory gets ``eval.jsonl`` (the manifest rows, read by the decode stage through
``DataDir(set_dir).eval_rows()``; entries sharing a ``set_dir`` are written into one manifest, ids
unique), ``benchmark.json`` (the entries and row counts), ``config.benchmark.yaml`` (the resolved
config) and, last, the ``.done`` marker.  A set whose entries are unchanged since its ``.done`` is
skipped (``--force`` rewrites it).  Every problem (unknown keys, missing copies) is reported at once
before anything is written.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("toolkit.bin.prepare_benchmark")

SET_KEY = "set_dir"
MANIFEST = "eval.jsonl"
SUMMARY = "benchmark.json"


def read_entries(node: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``benchmarks:`` entries as plain dicts, and every problem found in them (nothing is built)."""
    from toolkit.score.benchmarks import BENCHMARKS

    if not isinstance(node, Sequence) or isinstance(node, (str, bytes)) or not node:
        return [], ["benchmarks: must be a non-empty list of {name: <benchmark>, set_dir: <dir>, ...loader arguments}; "
                    f"registered benchmarks: {', '.join(BENCHMARKS.choices())}"]
    entries, problems = [], []
    for i, entry in enumerate(node):
        where = f"benchmarks[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be a mapping with 'name' and '{SET_KEY}', got {type(entry).__name__}")
            continue
        entry = dict(entry)
        if not entry.get(SET_KEY):
            problems.append(f"{where}.{SET_KEY}: missing; the directory that gets this benchmark's {MANIFEST} (e.g. data/mmau_test_mini)")
        loader = {k: v for k, v in entry.items() if k != SET_KEY}
        problems += BENCHMARKS.check(loader, where)
        entries.append(entry)
    return entries, problems


def group_by_set(entries: Sequence[dict[str, Any]]) -> dict[Path, list[dict[str, Any]]]:
    """set_dir -> its entries, in config order."""
    groups: dict[Path, list[dict[str, Any]]] = {}
    for entry in entries:
        groups.setdefault(Path(entry[SET_KEY]), []).append(entry)
    return groups


def is_current(set_dir: Path, entries: Sequence[dict[str, Any]]) -> bool:
    """True when ``set_dir`` was finished from exactly these entries."""
    from toolkit.data.section import PREPARE_DONE

    summary = set_dir / SUMMARY
    if not (set_dir / PREPARE_DONE).exists() or not summary.is_file():
        return False
    try:
        return json.loads(summary.read_text(encoding="utf-8")).get("entries") == list(entries)
    except json.JSONDecodeError:
        return False


def write_set(set_dir: Path, loaders: Sequence[tuple[dict[str, Any], Any]]) -> dict[str, Any]:
    """Write every loader's rows into ``<set_dir>/eval.jsonl`` (atomically); returns the summary."""
    from toolkit.score.benchmarks import BenchmarkError

    from toolkit.jsonl import write_jsonl

    seen: set[str] = set()
    counts, metrics = [], Counter()

    def checked() -> Iterator[dict[str, Any]]:  # raising here leaves the old manifest as it was
        for entry, loader in loaders:
            n = 0
            for row in loader.rows():
                if row["id"] in seen:
                    raise BenchmarkError(f"{set_dir}: id {row['id']!r} appears twice (entry {entry['name']}); entries that share "
                                         f"a {SET_KEY} must yield distinct ids (e.g. give dynamic_superb tasks distinct 'task' names)")
                seen.add(row["id"])
                metrics[row.get("metric")] += 1
                n += 1
                yield row
            if n == 0:
                raise BenchmarkError(f"{set_dir}: benchmark entry {entry} produced no rows; check its local copy")
            counts.append(n)

    write_jsonl(set_dir / MANIFEST, checked())
    return {"entries": [e for e, _ in loaders], "rows": counts, "total_rows": sum(counts), "metrics": dict(metrics)}


def main(argv: Sequence[str] | None = None) -> int:
    from toolkit.config import ConfigError, parse_cli, raise_if_problems, save_resolved, to_container

    # --force (from parse_cli): rewrite sets that are already prepared
    args, cfg = parse_cli(argv, description=__doc__.splitlines()[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # 1. read and check: every entry against its loader's signature, before any work
    from toolkit.data.section import PREPARE_DONE
    from toolkit.score.benchmarks import BENCHMARKS, BenchmarkError

    if "benchmarks" not in cfg:
        raise ConfigError(f"{args.config}: no 'benchmarks:' section; see python -m toolkit.bin.prepare_benchmark --help "
                          "or egs/eval/desta25/conf/eval.yaml")
    entries, problems = read_entries(to_container(cfg.benchmarks))
    raise_if_problems(problems)
    groups = group_by_set(entries)
    todo = {d: e for d, e in groups.items() if args.force or not is_current(d, e)}
    for set_dir in groups.keys() - todo.keys():
        log.info("Stage 1: %s: already done, from the same entries (delete %s, or pass --force, to rewrite it)",
                 set_dir / MANIFEST, set_dir / PREPARE_DONE)

    # 2. set up: build every loader first, so all missing copies are reported together
    built: dict[Path, list[tuple[dict[str, Any], Any]]] = {}
    errors = []
    for set_dir, group in todo.items():
        for entry in group:
            node = {k: v for k, v in entry.items() if k != SET_KEY}
            try:
                built.setdefault(set_dir, []).append((entry, BENCHMARKS.build(node, f"benchmarks ({entry['name']} -> {set_dir})")))
            except BenchmarkError as err:
                errors.append(f"{entry['name']} -> {set_dir}: {err}")
    if errors:
        raise BenchmarkError("cannot read these benchmark copies (fix the paths, or drop the entries you do not have):\n  "
                             + "\n  ".join(errors))

    # 3. run: one manifest per set dir; resolved config beside it; done marker last
    for set_dir, loaders in built.items():
        names = ", ".join(e["name"] for e, _ in loaders)
        log.info("Stage 1: benchmarks: %s -> %s", names, set_dir / MANIFEST)
        (set_dir / PREPARE_DONE).unlink(missing_ok=True)
        summary = write_set(set_dir, loaders)
        (set_dir / SUMMARY).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        save_resolved(cfg, set_dir, name="config.benchmark.yaml")
        (set_dir / PREPARE_DONE).touch()
        log.info("%s: %d rows (%s)", set_dir / MANIFEST, summary["total_rows"],
                 ", ".join(f"{m}: {n}" for m, n in sorted(summary["metrics"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
