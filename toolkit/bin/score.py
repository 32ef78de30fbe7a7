"""Stage 7, scoring: decode outputs -> ``<out_dir>/RESULTS.md`` + ``results.json``.

    python -m toolkit.bin.score --config conf/score.yaml [key=value ...]

Config (``score:`` section; keys are :class:`ScoreOptions` fields)::

    score:
      out_dir: exp/desta25_tiny          # RESULTS.md, results.json, details/, config.yaml, score.done
      tag: null                          # name in the tables (default: the out_dir name)
      inputs:                            # decode outputs: a list of files/folders, or {set_name: path}
        mmau_test_mini: exp/desta25_tiny/decode/mmau_test_mini/decode.jsonl
      scorers: {mmau: {strip_prefixes: ["The correct answer is: "]}, wer: {normalizer: auto}}
      judge: null                        # or {name: hf|vllm|openai, ...} for metric: judge rows
      breakdown: [dataset, task, difficulty, modality, category]

A folder input means every ``*.jsonl`` in it (set name: the file stem, or the folder name for
``decode.jsonl``).  Per-utterance scores go to ``<out_dir>/details/<set>.jsonl``.  The stage is
skipped while ``score.done`` exists (delete it, or pass ``--force``, to score again).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from toolkit.score.settings import ScoreOptions

log = logging.getLogger("toolkit.bin.score")


def merged_decode_file(set_dir: Path) -> Path:
    """``decode.jsonl`` of a set; sharded decoding (``decode.shard<i>of<n>.jsonl``) is merged into it first.

    Stage 6 output (its ``.done.shard<i>of<n>`` markers sit in the decode root, ``set_dir.parent``) is read
    only as a complete set whose markers agree (toolkit/shards.py): a missing, stale or cut-short shard, or
    files of two shard counts, are refused with the fix instead of being scored as if complete."""
    from toolkit.shards import SHARD_FILE, merge_set

    merged = set_dir / "decode.jsonl"
    sharded = any(SHARD_FILE.match(p.name) for p in set_dir.glob("decode.shard*of*.jsonl"))
    if not sharded and not any(set_dir.parent.glob(".done.shard*of*")):
        return merged  # decode output not written by stage 6 (a hand-made or copied file)
    path = merge_set(set_dir, "decode", set_dir.parent, stage="stage 6 (decoding)")
    log.info("%s: %s", set_dir, f"scoring the merged shards in {path}" if sharded else f"scoring {path}")
    return path


def resolve_inputs(inputs: Any) -> list[tuple[str, Path]]:
    """``[(set_name, decode_jsonl)]`` from the ``score.inputs`` node (list of paths or name -> path)."""
    from toolkit.config import ConfigError

    if isinstance(inputs, dict):
        pairs = [(str(k), Path(v)) for k, v in inputs.items()]
    elif isinstance(inputs, (list, tuple)):
        pairs = [(None, Path(p)) for p in inputs]
    elif isinstance(inputs, str):
        pairs = [(None, Path(inputs))]
    else:
        raise ConfigError("score.inputs: give a list of decode output files/folders or a mapping set_name -> path")
    out: list[tuple[str, Path]] = []
    for name, path in pairs:
        if path.is_dir():
            set_dirs = [path] if list(path.glob("decode*.jsonl")) else sorted(d for d in path.iterdir() if d.is_dir() and list(d.glob("decode*.jsonl")))
            if set_dirs:  # the decode stage's layout: <decode dir>/<set>/decode.jsonl (or its shards)
                for d in set_dirs:
                    out.append((name if name and len(set_dirs) == 1 else d.name, merged_decode_file(d)))
                continue
            files = sorted(path.glob("*.jsonl"))
            if not files:
                raise ConfigError(f"score.inputs: folder {path} has no *.jsonl decode output")
            for f in files:
                out.append((name or f.stem, f))
        elif path.is_file():
            out.append((name or (path.parent.name if path.stem == "decode" else path.stem), path))
        else:
            raise ConfigError(f"score.inputs: {path} does not exist; run decoding first or fix the path")
    names = [n for n, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"score.inputs: set names {dupes} appear twice; use the mapping form set_name: path")
    return out


def write_controls(node: dict[str, Any], inputs: list[tuple[str, Path]], out_dir: Path, md: Path) -> None:
    """Run the perception controls (toolkit/score/controls.py) and add their table to RESULTS.md."""
    import json

    from toolkit.config import build_section
    from toolkit.jsonl import read_jsonl
    from toolkit.score.controls import ControlSettings, control_table, render_controls, run_controls

    settings = build_section(node, ControlSettings, "score.controls")
    decodes = run_controls(settings, out_dir)
    trained = {name: read_jsonl(path) for name, path in inputs}
    table = control_table(trained, decodes, settings.conditions, settings.metrics)
    (out_dir / "controls.json").write_text(json.dumps(table, indent=1, default=str))
    if table:
        with open(md, "a", encoding="utf-8") as f:
            f.write("\n" + render_controls(table))


def main(argv: list[str] | None = None) -> int:
    from toolkit.config import build_section, parse_cli, save_resolved, to_container
    from toolkit.markers import already_done

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args, cfg = parse_cli(argv, description=__doc__.splitlines()[0])
    if "score" not in cfg:
        from toolkit.config import ConfigError

        raise ConfigError("the config has no 'score:' section (see python -m toolkit.bin.score --help)")
    opts = build_section(cfg.score, ScoreOptions, "score")
    out_dir = Path(opts.out_dir)
    done = opts.done_marker()
    if already_done("Stage 7: scoring", [done], args.force):
        return 0
    done.unlink(missing_ok=True)  # a forced rerun is not done until it finishes
    inputs = resolve_inputs(to_container(opts.inputs))

    from toolkit.config import raise_if_problems
    from toolkit.score.base import SCORERS, score_file
    from toolkit.score.judges import build_judge
    from toolkit.score.results import write_results

    scorer_options = to_container(opts.scorers) or {}
    # A misspelled scorer name (score.scorers.wre) would otherwise be silently unused.
    raise_if_problems([f"score.scorers.{name}: unknown scorer; registered: {', '.join(SCORERS.choices())}"
                       for name in scorer_options if name not in SCORERS])

    judge = build_judge(opts.judge)
    tag = opts.tag or out_dir.resolve().name
    results = []
    for set_name, path in inputs:
        log.info("Stage 7: scoring: %s -> %s", path, out_dir / "RESULTS.md")
        results += score_file(path, set_name, opts.scorers, judge, opts.breakdown, out_dir / "details" / f"{set_name}.jsonl")
    save_resolved(cfg, out_dir, "score_config.yaml")
    md, _ = write_results(results, out_dir, tag)
    if opts.controls:
        write_controls(to_container(opts.controls), inputs, out_dir, md)
    done.write_text("ok\n")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
