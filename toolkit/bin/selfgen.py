"""Stage 4: self-generation. The backbone LLM answers (seed description + instruction) for every clip.

    python -m toolkit.bin.selfgen --config conf/desta25.yaml [--shard 0 --nshards 8] [key=value ...]

Reads ``data/<set>/seed_descriptions.jsonl`` (stage 3) and writes ``<output_dir>/<set>.jsonl``
(``<set>.shard<i>of<n>.jsonl`` when sharded): DeSTA-AQA5M-style training rows. Rerunning resumes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from toolkit.config import build_section, check_section, parse_cli, raise_if_problems, save_resolved, to_container
from toolkit.selfgen.settings import SelfGenConfig, output_name, shard_identity
from toolkit.shards import check_unique_names

log = logging.getLogger("toolkit.selfgen")


def check_same_generator(out_dir: Path, generator: dict[str, Any]) -> None:
    """Refuse to resume into answers written by another generator (a swapped LLM or decoding setting).

    Rows are resumed by id, so without this a run with ``llm=...`` swapped would silently keep the
    previous backbone's answers as targets.
    """
    current = json.loads(json.dumps(generator, default=str))
    for meta_file in sorted(out_dir.glob("selfgen_meta.shard*.json")):
        previous = json.loads(meta_file.read_text()).get("generator")
        if previous is not None and previous != current:
            raise SystemExit(
                f"{out_dir} holds answers from another generator ({meta_file.name}: {json.dumps(previous)[:300]}...). "
                f"Self-generated targets must come from one backbone: set selfgen.output_dir (and train.data.*_jsonl) to a new "
                f"directory for this generator, or delete {out_dir} to regenerate."
            )


def attribute_shares(data_dir: str, output: Path) -> dict[str, dict[str, Any]]:
    """Share of this output's answers that name each attribute of their clip (looked up by utt_id)."""
    from toolkit.data.datadir import DataDir
    from toolkit.jsonl import read_jsonl
    from toolkit.selfgen.runner import attribute_mentions

    metadata = {u.id: u.metadata for u in DataDir(data_dir).utterances()}
    return attribute_mentions(read_jsonl(output) if output.is_file() else [], metadata)


def main(argv: list[str] | None = None) -> None:
    def extra(parser):
        parser.add_argument("--shard", type=int, default=0, help="this job's shard index (0-based)")
        parser.add_argument("--nshards", type=int, default=1, help="number of independent shard jobs")

    args, cfg = parse_cli(argv, __doc__, extra)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if "selfgen" not in cfg:
        raise SystemExit(f"{args.config}: no 'selfgen:' section; see egs/mini/desta25/conf/desta25.yaml for one")
    from toolkit.models.chat_engines import CHAT_ENGINES
    from toolkit.selfgen.instructions import InstructionPool
    from toolkit.selfgen.runner import build_items, run_selfgen

    from toolkit.shards import clear_marker, refuse_other_counts, shard_status, write_marker

    # The section's and the backend's keys and value types in one error, before the backend loads its LLM.
    node = to_container(cfg.selfgen)
    backend_node = node.get("backend") if isinstance(node, dict) else None
    backend_problems = CHAT_ENGINES.check(backend_node, "selfgen.backend") if isinstance(backend_node, dict) else []
    raise_if_problems(check_section(node, SelfGenConfig, "selfgen") + backend_problems)
    section = build_section(cfg.selfgen, SelfGenConfig, "selfgen")
    check_unique_names(section.data_dirs, "selfgen.data_dirs")
    if not 0 <= args.shard < args.nshards:
        raise SystemExit(f"--shard must be in [0, {args.nshards}), got {args.shard}")
    out_dir = Path(section.output_dir)
    identity = shard_identity(section, args.nshards)
    status = shard_status(out_dir, args.shard, args.nshards, identity)
    if status.done:  # checked from the marker and the files: no model is loaded to find out
        log.info("Self-generation shard %d of %d is already done for this config and model; nothing to do",
                 args.shard, args.nshards)
        return
    log.info("Self-generation shard %d of %d: %s", args.shard, args.nshards, status.reason)
    refuse_other_counts(out_dir, args.nshards, identity, "./run.sh --stage 4",
                        f"delete {out_dir} to regenerate every answer with --nshards {args.nshards}")
    clear_marker(out_dir, args.shard, args.nshards)
    pool = InstructionPool(**section.instructions)
    backend = CHAT_ENGINES.build(section.backend, "selfgen.backend")
    # Everything that shapes an answer: the engine and its decoding, and the question put to it.
    generator = {**backend.description(), "template": section.template, "system_prompt": section.system_prompt,
                 "instructions": pool.digest(), "prompts_per_clip": section.prompts_per_clip}
    check_same_generator(out_dir, generator)
    if args.force:
        log.info("--force: self-generation never deletes answers; delete %s to regenerate them", out_dir)
    save_resolved(cfg, out_dir)
    meta_file = out_dir / f"selfgen_meta.shard{args.shard}of{args.nshards}.json"
    # Written before the first answer, so even a killed run records which generator wrote its rows.
    meta_file.write_text(json.dumps({"generator": generator, "stats": None}, indent=2, default=str))
    all_stats, outputs = [], []
    for data_dir in section.data_dirs:
        items = list(build_items([data_dir], pool, section.prompts_per_clip))
        out = out_dir / output_name(data_dir, args.shard, args.nshards)
        log.info("Self-generation: %s (%d items, shard %d/%d) -> %s", data_dir, len(items), args.shard, args.nshards, out)
        stats = run_selfgen(items, backend, out, batch_size=section.batch_size, shard=args.shard, nshards=args.nshards,
                            template=section.template, system_prompt=section.system_prompt)
        stats.update(data_dir=data_dir, output=str(out))
        stats["attribute_mentions"] = attribute_shares(data_dir, out)
        log.info("answers naming the clip's attributes (%s): %s", out.name, ", ".join(
            f"{k} {v['named']}/{v['rows']} ({v['share']} %)" for k, v in stats["attribute_mentions"].items()) or "none")
        log.info("done: %s", json.dumps(stats))
        all_stats.append(stats)
        outputs.append(out)
    meta_file.write_text(json.dumps({"generator": generator, "stats": all_stats}, indent=2, default=str))
    write_marker(out_dir, args.shard, args.nshards, identity, outputs)  # last: the shard is done


if __name__ == "__main__":
    main()
