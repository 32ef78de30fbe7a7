"""Done markers of the unsharded stages: one record per stage, owned by the stage.

Each stage CLI writes its marker(s) last, beside its outputs (training: ``<train.output_dir>/.done``,
scoring: ``<score.out_dir>/score.done``, data prep: ``<set dir>/.done`` ...), and on its next run skips
itself while they all exist. The recipe keeps no markers of its own: it calls every stage and lets the
stage decide, so deleting a stage's marker (or passing ``--force``) is what redoes that stage.
The sharded stages (4 and 6) use the same idea with one marker per shard (toolkit/shards.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("toolkit.markers")


def already_done(stage: str, markers: Sequence[Path], force: bool = False) -> bool:
    """True (after logging so, with the file to delete) when every marker exists and ``force`` is off.

    ``stage`` heads the log line ("Stage 5: training"). No markers means nothing is known to be done.
    """
    markers = [Path(m) for m in markers]
    if force or not markers or not all(m.exists() for m in markers):
        return False
    shown = str(markers[0]) if len(markers) == 1 else f"{markers[0]} and {len(markers) - 1} more"
    log.info("%s: already done (%s); delete it, or pass --force, to redo the stage", stage, shown)
    return True
