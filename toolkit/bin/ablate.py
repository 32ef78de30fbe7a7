"""Ablation studies: run training, decoding and scoring for each variant of a grid of overrides.

    python -m toolkit.bin.ablate --config conf/desta25.yaml --name adapter \\
        --variant qformer adapter=qformer_small --variant mlp adapter=mlp [key=value ...]
    python -m toolkit.bin.ablate --config conf/desta25.yaml --name grid \\
        --grid adapter=qformer_small,mlp --grid lalm.use_transcript=true,false

Each variant runs under its own tag (``<tag>_<name>_<variant>``, so ``exp/<that tag>/``) through
``toolkit.bin.train``, ``decode`` and ``score`` as separate processes (a crash in one variant does
not lose the others; a rerun skips the stages whose own done markers are there). Data prep and
self-generation are shared: run stages 1-4 once first. Finally ``gather_results`` writes one
comparison table (markdown + CSV) and a bar plot to ``exp/ablation_<name>/``.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
from pathlib import Path

STAGES = ("train", "decode", "score")


def parse_variants(variant_args: list[list[str]], grid_args: list[str]) -> dict[str, list[str]]:
    """Named variants from ``--variant NAME k=v ...`` and/or the cartesian product of ``--grid k=a,b``."""
    variants: dict[str, list[str]] = {}
    for spec in variant_args:
        name, *overrides = spec
        if any("=" not in o for o in overrides):
            raise SystemExit(f"--variant {name}: overrides must be key=value, got {overrides}")
        variants[name] = overrides
    axes = []
    for g in grid_args:
        if "=" not in g:
            raise SystemExit(f"--grid {g}: expected key=value1,value2")
        key, values = g.split("=", 1)
        axes.append([(key, v) for v in values.split(",")])
    for combo in itertools.product(*axes) if axes else []:
        name = "-".join(f"{k.split('.')[-1]}{v}" if v in ("true", "false") else v for k, v in combo)
        variants[name] = [f"{k}={v}" for k, v in combo]
    if len(variants) < 2:
        raise SystemExit("an ablation needs at least two variants (--variant NAME k=v ... or --grid k=a,b)")
    return variants


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--name", required=True, help="name of this study (exp/ablation_<name>/)")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"))
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma list of train,decode,score")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every variant")
    args = parser.parse_args(argv)

    from toolkit.config import load_config

    base_tag = str(load_config(args.config, args.overrides).get("tag", Path(args.config).stem))
    variants = parse_variants(args.variant, args.grid)
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"--stages: unknown {sorted(unknown)}; valid: {', '.join(STAGES)}")
    exp_dirs, failed = [], []
    for name, overrides in variants.items():
        tag = f"{base_tag}_{args.name}_{name}"
        cfg = load_config(args.config, [*args.overrides, *overrides, f"tag={tag}"])  # fail early on a bad override
        exp_dir = Path(str(cfg.get("exp_dir", f"exp/{tag}")))
        log_dir = exp_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f"== variant {name}: {' '.join(overrides)} -> {exp_dir}", flush=True)
        for stage in stages:  # each stage skips itself when its own done marker is there
            cmd = [sys.executable, "-m", f"toolkit.bin.{stage}", "--config", args.config, *args.overrides, *overrides, f"tag={tag}"]
            with open(log_dir / f"ablate_{stage}.log", "a") as log:
                rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
            if rc != 0:
                print(f"   {stage}: FAILED (exit {rc}); see {log_dir / f'ablate_{stage}.log'}", flush=True)
                failed.append(name)
                break
            print(f"   {stage}: ok", flush=True)
        exp_dirs.append(str(exp_dir))
    out = Path("exp") / f"ablation_{args.name}"
    done = [d for d, n in zip(exp_dirs, variants) if n not in failed]
    if done:
        subprocess.check_call([sys.executable, "-m", "toolkit.bin.gather_results", *done, "--out", str(out)])
        print(f"== comparison: {out}/comparison.md, {out}/comparison.csv, {out}/comparison.png", flush=True)
    if failed:
        raise SystemExit(f"variants failed: {failed}; fix and rerun (finished stages are skipped)")


if __name__ == "__main__":
    main()
