"""Gather several experiments' ``results.json`` into one comparison (the ablation table).

    python -m toolkit.bin.gather_results exp/a exp/b exp/c --out exp/compare [--metrics mmau wer]

Writes ``<out>/comparison.md`` and ``comparison.csv`` (one row per set and metric, one column
per experiment) and ``comparison.png`` (grouped bars; WER/CER are error rates, lower is better).
Only overall rows are compared (breakdown rows like ``mmau[task=sound]`` are left out unless
``--breakdown``). Where every experiment has stage 7's ``controls.json`` (``score.controls:``), a second
table, ``controls.md`` / ``controls.png``, puts each experiment's per-task score (closed-set accuracy,
instruction following) beside the backbone reading the seed description (the oracle), so an ablation
shows what each variant keeps of the backbone's own skills.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path


def build_table(exp_dirs: list[str], metrics: list[str] | None = None, breakdown: bool = False):
    """``(tags, keys, values)``: keys are ``(set, metric, judge)``, values[key][tag] a float or NaN."""
    from toolkit.score.results import read_results

    tags: list[str] = []
    keys: list[tuple[str, str, str]] = []
    values: dict[tuple[str, str, str], dict[str, float]] = {}
    for d in exp_dirs:
        tag, rows = read_results(d)
        if tag in tags:
            tag = f"{tag} ({d})"
        tags.append(tag)
        for r in rows:
            if (not breakdown and "[" in r.set) or (metrics and r.metric not in metrics):
                continue
            key = (r.set, r.metric, r.judge or "-")
            if key not in values:
                keys.append(key)
                values[key] = {}
            values[key][tag] = r.value
    return tags, keys, values


def controls_table(exp_dirs: list[str]) -> tuple[list[str], list[tuple[str, str]], dict] | None:
    """``(tags, keys, values)`` from each experiment's ``controls.json``: keys ``(set, task)``, values per tag plus
    ``"backbone + description"`` (the oracle, from the first experiment that has it). None if any lacks the file."""
    import json

    from toolkit.score.results import read_results

    files = [Path(d) / "controls.json" for d in exp_dirs]
    if not files or not all(f.is_file() for f in files):
        return None
    tags: list[str] = []
    keys: list[tuple[str, str]] = []
    values: dict[tuple[str, str], dict[str, float]] = {}
    oracle = "backbone + description"
    for d, f in zip(exp_dirs, files):
        tag, _ = read_results(d)
        tag = f"{tag} ({d})" if tag in tags else tag
        tags.append(tag)
        for entry in json.loads(f.read_text()):
            key = (str(entry["set"]), str(entry["task"]))
            if key not in values:
                keys.append(key)
                values[key] = {}
            values[key][tag] = float(entry["trained"]["value"])
            if "oracle" in entry and oracle not in values[key]:
                values[key][oracle] = float(entry["oracle"]["value"])
    if any(oracle in v for v in values.values()):
        tags.append(oracle)
    return tags, keys, values


def write_controls_outputs(tags: list[str], keys: list[tuple[str, str]], values: dict, out: Path) -> Path:
    """``controls.md`` and ``controls.png``: per task, each experiment's score and the backbone's own."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Per task, beside the backbone reading the seed description", "",
             "Closed-set tasks: accuracy (%); instruction_following: prompts whose constraint is followed (%).", "",
             "| set | task | " + " | ".join(tags) + " |", "|---|---|" + "---:|" * len(tags)]
    for key in keys:
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(_fmt(values[key].get(t)) for t in tags) + " |")
    md = out / "controls.md"
    md.write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(keys) * max(1, len(tags)) / 2 + 2), 4.5))
    width = 0.8 / max(1, len(tags))
    for i, tag in enumerate(tags):
        ys = [values[k].get(tag, math.nan) for k in keys]
        ax.bar([x + i * width for x in range(len(keys))], [0 if math.isnan(y) else y for y in ys], width, label=tag,
               hatch="//" if i == len(tags) - 1 and tag.startswith("backbone") else None)
    ax.set_xticks([x + width * (len(tags) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels([f"{k[0]}\n{k[1]}" for k in keys], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("% correct / followed")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "controls.png", dpi=100)
    plt.close(fig)
    return md


def _fmt(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}"


def write_outputs(tags, keys, values, out: Path) -> tuple[Path, Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md_lines = ["| set | metric | judge | " + " | ".join(tags) + " |", "|---|---|---|" + "---:|" * len(tags)]
    for key in keys:
        md_lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(_fmt(values[key].get(t)) for t in tags) + " |")
    md = out / "comparison.md"
    md.write_text("# Comparison\n\n" + "\n".join(md_lines) + "\n")
    csv_path = out / "comparison.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["set", "metric", "judge", *tags])
        for key in keys:
            w.writerow([*key, *("" if math.isnan(values[key].get(t, math.nan)) else values[key][t] for t in tags)])
    png = out / "comparison.png"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(keys) * max(1, len(tags)) / 2 + 2), 4.5))
    width = 0.8 / max(1, len(tags))
    for i, tag in enumerate(tags):
        ys = [values[k].get(tag, math.nan) for k in keys]
        ax.bar([x + i * width for x in range(len(keys))], [0 if math.isnan(y) else y for y in ys], width, label=tag)
    ax.set_xticks([x + width * (len(tags) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels([f"{k[0]}\n{k[1]}" for k in keys], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("score (WER/CER: lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return md, csv_path, png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp_dirs", nargs="+", help="experiment folders holding results.json (or the files)")
    parser.add_argument("--out", required=True, help="output folder for comparison.{md,csv,png}")
    parser.add_argument("--metrics", nargs="*", default=None, help="only these metrics")
    parser.add_argument("--breakdown", action="store_true", help="include breakdown rows (set[field=value])")
    args = parser.parse_args(argv)
    tags, keys, values = build_table(args.exp_dirs, args.metrics, args.breakdown)
    if not keys:
        print("gather_results: no result rows matched", file=sys.stderr)
        return 1
    md, _, _ = write_outputs(tags, keys, values, Path(args.out))
    print(md.read_text())
    per_task = controls_table(args.exp_dirs)
    if per_task:
        print(write_controls_outputs(*per_task, Path(args.out)).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
