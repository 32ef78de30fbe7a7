"""Stage 1: corpus -> Kaldi data dirs (wav.scp, text, utt2spk, metadata.jsonl; eval.jsonl for test sets).

    python -m toolkit.bin.prepare_data --config conf/mini.yaml [data.corpus.max_clips=24 ...]

Reads the ``data:`` section (see toolkit/data/section.py), builds the preparer named in
``data.corpus`` from the ``CORPORA`` registry, writes ``<data_dir>/<prefix><set>/``, saves the
resolved config beside each set (config.prepare.yaml) and writes the ``.done`` marker last. The stage is
skipped while every set it writes holds its ``.done`` (delete one, or pass ``--force``, to prepare again).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("toolkit.bin.prepare_data")


def prepared_markers(section) -> list[Path]:
    """The ``.done`` of every set this stage writes: ``data.sets``, or (null) every ``<prefix>*`` set dir there is.

    A set dir without its marker (a run killed half way, or a marker deleted) makes the stage run again.
    """
    from toolkit.data.section import PREPARE_DONE

    root = Path(section.data_dir)
    if section.sets:
        return [root / f"{section.prefix}{s}" / PREPARE_DONE for s in section.sets]
    work = root / "local"  # the preparers' scratch space (CorpusPreparer.prepare), not a set
    return [d / PREPARE_DONE for d in sorted(root.glob(f"{section.prefix}*")) if d.is_dir() and d != work]


def main(argv: Sequence[str] | None = None) -> int:
    from toolkit.config import parse_cli, save_resolved

    args, cfg = parse_cli(argv, description=__doc__.splitlines()[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # 1. read and check the config (the corpus node against its constructor, before any work)
    from toolkit.data.corpora.base import CORPORA
    from toolkit.data.section import PREPARE_DONE, data_section
    from toolkit.markers import already_done

    section = data_section(cfg)
    preparer = CORPORA.build(section.corpus, where="data.corpus")
    if already_done("Stage 1: data prep", prepared_markers(section), args.force):
        return 0

    # 2. run
    log.info("Stage 1: data prep: corpus %s -> %s/%s*", section.corpus.get("name"), section.data_dir, section.prefix)
    sets = preparer.prepare(section.data_dir, sets=section.sets, prefix=section.prefix)

    # 3. resolved config beside the outputs, done marker last
    for name, data in sets.items():
        save_resolved(cfg, data.path, name="config.prepare.yaml")
        (data.path / PREPARE_DONE).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
