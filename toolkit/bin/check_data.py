"""Stage 2: decode every utterance, write utt2dur and bad_utts (optionally 16 kHz mono copies).

    python -m toolkit.bin.check_data --config conf/mini.yaml [data.check.format=true ...]

For each set of the ``data:`` section: checks every entry (at most 2 worker processes), writes
``utt2dur``, ``bad_utts`` ("id<TAB>reason"), ``check_notes`` and prints
"N ok, M bad (see data/x/bad_utts)". With ``data.check.format: true`` the good utterances are also
written as 16 kHz mono wavs to ``<dump_dir>/<set>/`` with a data dir of their own. The resolved
config is saved as ``config.check.yaml`` and ``.check.done`` is written last; while every set holds one the
stage is skipped (delete one, or pass ``--force``, to check again).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("toolkit.bin.check_data")


def main(argv: Sequence[str] | None = None) -> int:
    from toolkit.config import parse_cli, save_resolved

    args, cfg = parse_cli(argv, description=__doc__.splitlines()[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # 1. read and check the config
    from toolkit.data.check import check_data_dir
    from toolkit.data.section import CHECK_DONE, PREPARE_DONE, check_section, data_section
    from toolkit.markers import already_done

    section = data_section(cfg)
    check = check_section(section)
    set_dirs = section.set_dirs()
    markers = [d / CHECK_DONE for d in set_dirs]
    if check.format:
        markers += [Path(check.dump_dir) / d.name / CHECK_DONE for d in set_dirs]
    if already_done("Stage 2: audio check", markers, args.force):
        return 0

    # 2. run
    for set_dir in set_dirs:
        format_dir = Path(check.dump_dir) / set_dir.name if check.format else None
        log.info("Stage 2: audio check: %s -> %s/{utt2dur,bad_utts}%s", set_dir, set_dir,
                 f" + {format_dir}" if format_dir else "")
        (set_dir / CHECK_DONE).unlink(missing_ok=True)
        result = check_data_dir(set_dir, nj=check.nj, format_dir=format_dir, allow_pickle=section.allow_pickle)
        print(f"{set_dir}: {result.summary(set_dir)}", flush=True)

        # 3. resolved config beside the outputs, done marker last
        save_resolved(cfg, set_dir, name="config.check.yaml")
        if format_dir is not None:
            save_resolved(cfg, format_dir, name="config.check.yaml")
            (format_dir / PREPARE_DONE).touch()  # a finished data dir of its own: later stages may point at it
            (format_dir / CHECK_DONE).touch()
        (set_dir / CHECK_DONE).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
