"""The engine interface: run a set of independent tasks (one per shard) or one job, and say how each ended."""

from __future__ import annotations

import abc
import os
import re
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.config import ConfigError
from toolkit.registry import Registry

# The job kinds a resource file may describe; ``default`` applies to all of them.
KINDS = ("selfgen", "decode", "train", "score", "export")


@dataclass
class Task:
    """One command to run: ``commands`` run one after another (all must succeed); ``log`` is this attempt's log.

    ``ranks`` marks commands that run once per rank of a multi-process job (training under SLURM: ``srun``).
    """

    index: int
    commands: list[list[str]]
    log: Path
    ranks: list[bool] = field(default_factory=list)

    def shell(self) -> str:
        return " && ".join(shlex.join(c) for c in self.commands)


@dataclass
class TaskResult:
    task: Task
    ok: bool
    state: str  # "exit 0", "exit 1", "killed by SIGKILL", "CANCELLED (exit 0:15)" ...


def describe_returncode(code: int | None) -> str:
    """``subprocess`` return codes in words: negative codes are signals."""
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def next_attempt(log_dir: Path, name: str) -> int:
    """1 + the highest attempt number among ``<name>.*attempt<k>.log``: a new attempt never overwrites a log."""
    found = [int(m[1]) for p in log_dir.glob(f"{name}*.attempt*.log")
             if (m := re.search(r"\.attempt(\d+)\.log$", p.name))]
    return max(found, default=0) + 1


class Engine(abc.ABC):
    """Runs tasks somewhere and waits for them.

    Args:
        resources: the resource file's content, ``{default: {...}, selfgen: {...}, ...}``; each engine
            documents the keys it reads.
    """

    keys: tuple[str, ...] = ()

    def __init__(self, resources: dict[str, Any] | None = None, source: str = "the engine config"):
        resources = resources or {}
        self.source = source
        problems = []
        for kind, node in resources.items():
            if kind not in ("default", *KINDS, *self.extra_sections()):
                problems.append(f"{source}: '{kind}' is not a job kind; use default, {', '.join(KINDS)}")
            elif kind in ("default", *KINDS):
                for key in node or {}:
                    if key not in self.keys:
                        problems.append(f"{source}: {kind}.{key} is not a setting of this engine; "
                                        f"valid: {', '.join(self.keys)}")
        if problems:
            raise ConfigError("invalid engine config:\n  " + "\n  ".join(problems))
        self.resources = resources

    def extra_sections(self) -> tuple[str, ...]:
        return ()

    def settings(self, kind: str) -> dict[str, Any]:
        """``default`` overlaid with the kind's own section."""
        return {**(self.resources.get("default") or {}), **(self.resources.get(kind) or {})}

    def train_overrides(self) -> list[str]:
        """Config overrides the training job needs to match what this engine allocates (none by default)."""
        return []

    @abc.abstractmethod
    def run(self, kind: str, name: str, tasks: list[Task]) -> list[TaskResult]:
        """Run every task (concurrently where the engine can), wait, and report each one's end."""


ENGINES = Registry("engine", base=Engine, variable="ENGINES", components="toolkit.engines")


def load_engine(name: str, conf: str | os.PathLike | None = None) -> Engine:
    """The engine ``name`` with the resources of the YAML file ``conf`` (None: the engine's defaults)."""
    resources: dict[str, Any] = {}
    if conf:
        from omegaconf import OmegaConf

        path = Path(conf)
        if not path.is_file():
            raise ConfigError(f"--cmd_conf {conf}: no such file; copy recipes/conf/{name}.yaml and edit it")
        resources = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    if name not in ENGINES:
        raise ConfigError(f"--cmd {name}: unknown engine; registered: {', '.join(ENGINES.choices())}")
    return ENGINES.get(name)(resources, str(conf or f"--cmd {name}"))
