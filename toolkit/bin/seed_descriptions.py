"""Stage 3: metadata -> seed descriptions (data/<set>/seed_descriptions.jsonl).

    python -m toolkit.bin.seed_descriptions --config conf/mini.yaml

Each row is ``{"id", "dataset", "seed_description"}`` (format in toolkit/selfgen/seed_description.py).
Ids listed in ``bad_utts`` are skipped and counted in the log. Needs ``utt2dur`` from stage 2.
The resolved config is saved as ``config.seed.yaml`` and ``.seed.done`` is written last; while every set holds
one the stage is skipped (delete one, or pass ``--force``, to write them again).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

log = logging.getLogger("toolkit.bin.seed_descriptions")


def main(argv: Sequence[str] | None = None) -> int:
    from toolkit.config import parse_cli, save_resolved

    args, cfg = parse_cli(argv, description=__doc__.splitlines()[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # 1. read and check the config
    from toolkit.data.datadir import DataDir, DataDirError, write_jsonl
    from toolkit.data.section import SEED_DONE, data_section
    from toolkit.selfgen.seed_description import seed_description, utterance_segments

    from toolkit.markers import already_done

    section = data_section(cfg)
    set_dirs = section.set_dirs()
    if already_done("Stage 3: seed descriptions", [d / SEED_DONE for d in set_dirs], args.force):
        return 0

    # 2. run
    for set_dir in set_dirs:
        log.info("Stage 3: seed descriptions: %s/metadata.jsonl -> %s/seed_descriptions.jsonl", set_dir, set_dir)
        (set_dir / SEED_DONE).unlink(missing_ok=True)
        data = DataDir(set_dir)
        rows = []
        for utt in data.utterances():  # skips (and logs) the ids in bad_utts
            if utt.duration is None:
                raise DataDirError(f"{set_dir}/utt2dur: no duration for '{utt.id}'; run stage 2 "
                                   "(python -m toolkit.bin.check_data) first")
            segments = utterance_segments(utt.metadata, utt.text, utt.duration)
            rows.append({"id": utt.id, "dataset": utt.dataset,
                         "seed_description": seed_description(segments, total_duration=utt.duration)})
        write_jsonl(set_dir / "seed_descriptions.jsonl", rows)
        log.info("%s: %d seed descriptions", set_dir, len(rows))

        # 3. resolved config beside the outputs, done marker last
        save_resolved(cfg, set_dir, name="config.seed.yaml")
        (set_dir / SEED_DONE).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
