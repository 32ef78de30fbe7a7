"""The ``data:`` config section shared by the data stages (prepare, check, seed descriptions).

::

    data:
      corpus:              # a CORPORA node: name + the preparer's constructor arguments
        name: mini
        max_clips: 24
      data_dir: data       # where data/<prefix><set>/ go
      sets: null           # which splits to write / process (null: every split the corpus has)
      prefix: ""           # prepended to set directory names (mini_ -> data/mini_train)
      allow_pickle: false  # read kaldiio ark entries that are Python pickles (they run code: trusted files only)
      check:               # stage 2
        nj: 2              # worker processes (at most 2)
        format: false      # also write 16 kHz mono wavs + a data dir under dump_dir/<set>
        dump_dir: dump
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.config import ConfigError, to_container

PREPARE_DONE = ".done"  # stage 1 marker, written last in each set dir
CHECK_DONE = ".check.done"
SEED_DONE = ".seed.done"
STAGE_MARKERS = (PREPARE_DONE, CHECK_DONE, SEED_DONE)


@dataclass
class CheckSection:
    """Stage 2 settings."""

    nj: int = 2
    format: bool = False
    dump_dir: str = "dump"


@dataclass
class DataSection:
    """The ``data:`` section; its keys are these fields (checked by ``toolkit.config.build_section``)."""

    corpus: dict[str, Any] = field(default_factory=dict)
    data_dir: str = "data"
    sets: list[str] | None = None
    prefix: str = ""
    check: dict[str, Any] = field(default_factory=dict)
    allow_pickle: bool = False

    def set_dirs(self) -> list[Path]:
        """The set directories the later stages work on.

        With ``sets`` given: ``<data_dir>/<prefix><set>``; otherwise every ``<data_dir>/<prefix>*`` that
        stage 1 finished (holds ``.done``). Raises when none is found.
        """
        root = Path(self.data_dir)
        if self.sets:
            dirs = [root / f"{self.prefix}{s}" for s in self.sets]
        else:
            dirs = sorted(p.parent for p in root.glob(f"{self.prefix}*/{PREPARE_DONE}"))
        missing = [d for d in dirs if not (d / PREPARE_DONE).exists()]
        if not dirs or missing:
            raise ConfigError(f"data sets not prepared: {[str(d) for d in missing] or str(root / (self.prefix + '*'))}. "
                              "Run stage 1 (python -m toolkit.bin.prepare_data --config ...) first")
        return dirs


def allow_pickle(cfg: Any) -> bool:
    """``data.allow_pickle`` of a config (false when absent), applied to this process's audio reader.

    Every stage that reads wav.scp entries or the feature cache calls it (stage 2, cache_features, training,
    decoding); a pickled kaldiio ark entry is refused unless it is true, since unpickling runs code.
    """
    from toolkit.audio import set_allow_pickle

    data = to_container(cfg.get("data")) if cfg is not None and hasattr(cfg, "get") else None
    value = data.get("allow_pickle", False) if isinstance(data, dict) else False
    if not isinstance(value, bool):
        raise ConfigError(f"data.allow_pickle: expects true or false, got {value!r}")
    set_allow_pickle(value)
    return value


def data_section(cfg: Any) -> DataSection:
    """Read and check ``cfg.data`` (every bad key reported at once)."""
    from toolkit.config import build_section

    if cfg is None or "data" not in cfg:
        raise ConfigError("the config has no 'data:' section; see toolkit/data/section.py for its keys")
    section = build_section(cfg["data"], DataSection, "data")
    section.corpus = to_container(section.corpus) or {}
    section.check = to_container(section.check) or {}
    return section


def check_section(section: DataSection) -> CheckSection:
    from toolkit.config import build_section

    return build_section(section.check, CheckSection, "data.check")
