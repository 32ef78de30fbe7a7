"""Dynamic-SUPERB Phase-2's per-task metric dispatch, and the rule-based metrics this toolkit reproduces.

Phase 2 scores each task (instance, e.g. ``SuperbASR_LibriSpeech-TestClean``) with its own metric:
most classification tasks with ``llm_classification`` (an LLM judges the answer against the label),
ASR tasks with ``word_error_rate``/``character_error_rate``, translation with ``sacre_bleu``, and
about twenty task-specific metrics (speaker counting, beat tracking, diarization, ...).  The table
(``data/dynamic_superb_task_metrics.yaml``) comes from the Phase-2 evaluation's ``taskname_to_metrics``.

What is reproduced: the dispatch, and the three metrics that are plain corpus scores, computed with
this toolkit's one implementation of each (:func:`toolkit.metrics.error_rate`, :func:`bleu`).
What is not: the metric functions' own code (their text normalisation, the judge prompt of
``llm_classification``, the other task-specific metrics) could not be read from the official
repository (``dynamic-superb/dynamic-superb``) when this was written, so no number here is verified
against the official scorer; every summary says so, and tasks whose metric is not reproduced are
reported unscored, never given a substitute metric silently.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

TABLE_FILE = Path(__file__).resolve().parent / "data" / "dynamic_superb_task_metrics.yaml"
TABLE_SOURCE = ("cyhuang-tw/speechlm_eval@7181c58f05c76536ae3b46dc5d932999479e03ff "
                "dynamic_superb/evaluation/task_metrics.py")

#: metric -> (unit, stage-7 scorer name) of the metrics reproduced with the toolkit's corpus scores.
RULE_METRICS: dict[str, tuple[str, str]] = {
    "word_error_rate": ("word", "wer"),
    "character_error_rate": ("char", "cer"),
    "sacre_bleu": ("bleu", "bleu"),
}


@lru_cache(maxsize=1)
def task_metrics() -> dict[str, str]:
    """``{task: metric}`` for every Phase-2 task in the table."""
    import yaml

    grouped = yaml.safe_load(TABLE_FILE.read_text(encoding="utf-8"))
    return {task: metric for metric, tasks in grouped.items() for task in tasks}


def task_metric(task: str) -> str:
    """The Phase-2 metric of ``task``; an unknown task fails naming the table and a close match."""
    table = task_metrics()
    if task not in table:
        import difflib

        close = difflib.get_close_matches(task, table, n=3)
        raise KeyError(f"Dynamic-SUPERB task '{task}' is not in {TABLE_FILE.name} ({len(table)} Phase-2 tasks)"
                       + (f"; did you mean {', '.join(close)}?" if close else "")
                       + " Give the instance name, e.g. SuperbASR_LibriSpeech-TestClean")
    return table[task]
