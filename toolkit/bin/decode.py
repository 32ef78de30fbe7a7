"""Stage 6: decode every eval set with a trained (or exported, or official) model.

    python -m toolkit.bin.decode --config conf/desta25.yaml [--shard i --nshards n] [key=value ...]

Reads each ``<eval_set>/eval.jsonl`` and writes ``<output_dir>/<set>/decode.jsonl``: resumable after a
kill, and started over when the model (weights hash, config) or the decoding settings changed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from toolkit.config import build_section, parse_cli, raise_if_problems, save_resolved
from toolkit.decode.settings import DecodeConfig, shard_identity
from toolkit.shards import check_unique_names

log = logging.getLogger("toolkit.decode")


def reset_if_stale(out: Path, identity: dict[str, Any], force: bool) -> None:
    """Start ``out`` over when its rows came from another model (a retrain) or when forced.

    Decoding resumes by id, so without this a retrained model would keep the previous model's
    predictions and they would be scored.
    """
    meta = out.with_name(out.stem + ".meta.json")
    previous = json.loads(meta.read_text()) if meta.is_file() else None
    if out.exists() and (force or previous != identity):
        reason = "--force" if force else "the predictions came from another model or decoding setting"
        log.info("%s: starting over (%s)", out, reason)
        out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(identity, indent=2))


def main(argv: list[str] | None = None) -> None:
    def extra(parser):
        parser.add_argument("--shard", type=int, default=0)
        parser.add_argument("--nshards", type=int, default=1)

    args, cfg = parse_cli(argv, __doc__, extra)
    from toolkit.data.section import allow_pickle

    allow_pickle(cfg)  # data.allow_pickle: may pickled ark entries be read (they run code)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    section = build_section(cfg.decode, DecodeConfig, "decode")
    from toolkit.data.datadir import DataDir
    from toolkit.models.eval_decoding import decode_rows
    from toolkit.jsonl import shard_of
    from toolkit.models.chat_engines import CHAT_ENGINES

    from toolkit.shards import clear_marker, output_name, refuse_other_counts, remove_count, shard_status, write_marker

    if not 0 <= args.shard < args.nshards:
        raise SystemExit(f"--shard must be in [0, {args.nshards}), got {args.shard}")
    check_unique_names(section.eval_sets, "decode.eval_sets")
    out_root = Path(section.output_dir)
    identity = shard_identity(section, args.nshards)
    status = shard_status(out_root, args.shard, args.nshards, identity)
    if status.done and not args.force:  # checked from the marker and the files: no model is loaded to find out
        log.info("Decoding shard %d of %d is already done for this model and these settings; nothing to do",
                 args.shard, args.nshards)
        return
    log.info("Decoding shard %d of %d: %s", args.shard, args.nshards, "--force" if args.force else status.reason)
    if args.force:
        stale = [n for n in shard_counts_of(out_root) if n != args.nshards]
    else:
        stale = refuse_other_counts(out_root, args.nshards, identity, "./run.sh --stage 6",
                                    f"pass --force to decode every set again with --nshards {args.nshards}")
    for n in stale:  # predictions of another model or shard count: decoding redoes them
        for path in remove_count(out_root, n):
            log.info("removed %s (from a %d-shard run of another model or setting)", path, n)
    clear_marker(out_root, args.shard, args.nshards)
    engine_node = section.engine_node()
    raise_if_problems(CHAT_ENGINES.check(engine_node, "decode"))  # an unknown backend or key, before loading
    if section.backend == "vllm":  # vLLM reads what the export stage writes for it; a trained model dir gets it here
        from toolkit.serve.vllm_plugin.prepare import prepare_vllm_dir

        prepare_vllm_dir(section.model_dir)
    engine = CHAT_ENGINES.build(engine_node, "decode")
    save_resolved(cfg, out_root)
    summary, outputs = {}, []
    for eval_set in section.eval_sets:
        rows = DataDir(eval_set).eval_rows(section.manifest)
        rows = [r for r in rows if shard_of(r["id"], args.nshards) == args.shard]
        out = out_root / Path(eval_set).name / output_name("decode", args.shard, args.nshards)
        reset_if_stale(out, identity, args.force)
        outputs.append(out)
        log.info("Decoding %s (%d rows) -> %s", eval_set, len(rows), out)
        summary[eval_set] = decode_rows(engine, rows, out, batch_size=section.batch_size)
        log.info("done: %s", json.dumps(summary[eval_set]))
    (out_root / f"decode_stats{'' if args.nshards == 1 else f'.shard{args.shard}'}.json").write_text(json.dumps(summary, indent=2))
    write_marker(out_root, args.shard, args.nshards, identity, outputs)  # last: the shard is done


def shard_counts_of(out_root: Path) -> list[int]:
    from toolkit.shards import shard_counts

    return sorted(shard_counts(out_root))


if __name__ == "__main__":
    main()
