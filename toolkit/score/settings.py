"""The scoring stage's settings: the ``score:`` section as a dataclass (see toolkit/bin/score.py for an example)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.score.base import DEFAULT_BREAKDOWN  # light: no torch, no scorer imported yet

DONE = "score.done"


@dataclass
class ScoreOptions:
    """The ``score:`` section.

    Args:
        out_dir: where ``RESULTS.md``, ``results.json``, ``details/``, the resolved config and ``score.done`` go.
        inputs: decode outputs: a list of files/folders, or ``{set_name: path}``.
        tag: the name in the tables (null: the out_dir name).
        scorers: options per scorer, ``{metric: {option: value}}``.
        judge: ``{name: hf|vllm|openai, ...}`` for judged rows (null: those are reported as NaN with the reason).
        breakdown: row fields that split a set into groups in the tables.
        controls: the perception controls (toolkit/score/controls.py); null: none.
    """

    out_dir: str
    inputs: Any
    tag: str | None = None
    scorers: dict[str, dict[str, Any]] = field(default_factory=dict)
    judge: dict[str, Any] | None = None
    breakdown: list[str] = field(default_factory=lambda: list(DEFAULT_BREAKDOWN))
    controls: dict[str, Any] | None = None

    def done_marker(self) -> Path:
        """``<out_dir>/score.done``: written last; while it exists the stage is skipped (delete it to score again)."""
        return Path(self.out_dir) / DONE
