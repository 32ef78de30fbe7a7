"""Run a sharded stage (4 or 6) or a whole stage as jobs on an engine (``local``, ``slurm``, ``ray``).

    python -m toolkit.bin.launch shards --stage selfgen --config conf/desta25.yaml --nshards 8 \\
        --cmd slurm --cmd_conf conf/slurm.yaml --log_dir exp/desta25/logs --name stage4 [key=value ...]
    python -m toolkit.bin.launch job --modules cache_features+train --config conf/desta25.yaml \\
        --cmd slurm --cmd_conf conf/slurm.yaml --log_dir exp/desta25/logs --name stage5 [key=value ...]

``shards``: works out from the shard markers (toolkit/shards.py), without loading any model, which shards
are not done for the current config and model, submits only those (one log per attempt:
``<name>.shard<i>.attempt<k>.log``), waits, reports every failed task with its log and exit state, and
finally checks the complete set (decoding: merges it into ``<set>/decode.jsonl``). ``job``: the stage's
modules, one after another, as one job (training under ``srun`` on SLURM: Lightning's SLURM launcher).
The recipe (recipes/desta25.sh) calls this; the shell only orders stages.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from toolkit.config import load_config

log = logging.getLogger("toolkit.launch")
STAGE_NUMBER = {"selfgen": 4, "decode": 6}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True)
    parser.add_argument("--cmd", default="local", help="engine: local, slurm or ray")
    parser.add_argument("--cmd_conf", default=None, help="the engine's resource YAML (conf/slurm.yaml, conf/ray.yaml)")
    parser.add_argument("--log_dir", default="logs")
    parser.add_argument("--name", default=None, help="job name and log file prefix (default: stage<N>)")
    parser.add_argument("--force", action="store_true", help="passed to the stage (decoding: redo every shard)")
    parser.add_argument("overrides", nargs="*")


def stage_command(module: str, config: str, force: bool, overrides: list[str], extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", f"toolkit.bin.{module}", "--config", config, *(["--force"] if force else []),
            *extra, *overrides]


def run_shards(args: argparse.Namespace) -> int:
    from toolkit.engines import Task, load_engine
    from toolkit.engines.base import next_attempt
    from toolkit.shards import clear_marker, complete_set, merge_set, refuse_other_counts, shard_status

    stage, n = args.stage, args.nshards
    number, name = STAGE_NUMBER[stage], args.name or f"stage{STAGE_NUMBER[stage]}"
    cfg = load_config(args.config, args.overrides)
    out_dir, identity, sets = importlib.import_module(f"toolkit.{stage}.settings").shard_plan(cfg, n)
    engine = load_engine(args.cmd, args.cmd_conf)
    redo = args.force and stage == "decode"  # self-generated answers are never redone (delete them to regenerate)
    if not redo:  # refused here too, so that nothing is submitted; the stage itself checks the same
        start_over = (f"delete {out_dir} to regenerate every answer with --nshards {n}" if stage == "selfgen" else
                      f"pass --force (./run.sh --stage {number}) to decode every set again with --nshards {n}")
        refuse_other_counts(out_dir, n, identity, f"./run.sh --stage {number}", start_over)
    statuses = [shard_status(out_dir, i, n, identity) for i in range(n)]
    missing = list(range(n)) if redo else [s.shard for s in statuses if not s.done]
    if not missing:
        log.info("Stage %d: all %d shards already done for this config and model (markers in %s); nothing submitted",
                 number, n, out_dir)
    else:
        attempt = next_attempt(Path(args.log_dir), name)
        tasks = [Task(i, [stage_command(stage, args.config, args.force, args.overrides,
                                        ["--shard", str(i), "--nshards", str(n)])],
                      Path(args.log_dir) / f"{name}.shard{i}.attempt{attempt}.log") for i in missing]
        for s in statuses:
            if s.shard in missing:
                log.info("Stage %d: shard %d of %d: %s", number, s.shard, n, "redo (--force)" if redo else s.reason)
            if redo:  # a forced shard is not done until it reruns, even if its task is cancelled before it starts
                clear_marker(out_dir, s.shard, n)
        log.info("Stage %d: submitting shards %s of %d (--cmd %s, attempt %d; logs %s)", number, missing, n, args.cmd,
                 attempt, tasks[0].log.with_name(f"{name}.shard<i>.attempt{attempt}.log"))
        results = engine.run(stage, name, tasks)
        failed = [r for r in results if not r.ok]
        # A task that exited 0 without finishing its shard (no marker) is a failure too.
        failed += [r for r in results if r.ok and not shard_status(out_dir, r.task.index, n, identity).done]
        for r in failed:
            log.error("Stage %d: shard %d of %d failed: %s; log: %s", number, r.task.index, n, r.state, r.task.log)
        if failed:
            log.error("Stage %d: %d of %d shards failed; fix the cause and rerun the same command: only shards %s "
                      "are submitted again", number, len(failed), n, sorted(r.task.index for r in failed))
            return 1
        log.info("Stage %d: shards %s finished", number, missing)
    for directory, stem in sets:
        if stage == "decode":
            path = merge_set(directory, stem, out_dir, identity, f"stage {number}")
            log.info("Stage %d: %s complete (%d shards) -> %s", number, directory, n, path)
        else:
            files = complete_set(directory, stem, out_dir, identity, f"stage {number}")
            log.info("Stage %d: %s complete: %s", number, stem, ", ".join(str(f) for f in files))
    return 0


def run_job(args: argparse.Namespace) -> int:
    from toolkit.engines import Task, load_engine
    from toolkit.engines.base import next_attempt

    modules = args.modules.split("+")
    name = args.name or modules[-1]
    engine = load_engine(args.cmd, args.cmd_conf)
    kind = "train" if "train" in modules else modules[-1]
    commands = [stage_command(m, args.config, args.force, args.overrides, [],
                              ) + (engine.train_overrides() if m == "train" else []) for m in modules]
    task = Task(0, commands, Path(args.log_dir) / f"{name}.attempt{next_attempt(Path(args.log_dir), name)}.log",
                ranks=[m == "train" for m in modules])
    log.info("%s: %s as one job (--cmd %s); log: %s", name, "+".join(modules), args.cmd, task.log)
    result = engine.run(kind, name, [task])[0]
    if not result.ok:
        log.error("%s failed: %s; log: %s", name, result.state, task.log)
        return 1
    log.info("%s finished: %s", name, result.state)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    shards = sub.add_parser("shards", help="a sharded stage (4 or 6)")
    shards.add_argument("--stage", required=True, choices=sorted(STAGE_NUMBER))
    shards.add_argument("--nshards", type=int, default=1)
    _common(shards)
    job = sub.add_parser("job", help="one stage as one job")
    job.add_argument("--modules", required=True, help="toolkit.bin modules run in order, joined by '+'")
    _common(job)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from toolkit.config import _install_user_error_hook

    _install_user_error_hook()
    if args.mode == "shards" and args.nshards < 1:
        raise SystemExit(f"--nshards must be >= 1, got {args.nshards}")
    return run_shards(args) if args.mode == "shards" else run_job(args)


if __name__ == "__main__":
    sys.exit(main())
