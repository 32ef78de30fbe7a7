"""``dynamic_superb``: one Dynamic-SUPERB task (Phase 1 or Phase 2) from a local Hugging Face dataset folder.

Every task is a dataset with columns ``audio``, ``file``, ``instruction``, ``label`` (some Phase-2
tasks carry a second clip, ``audio2``, kept as an extra path); stored as parquet files or as a
``save_to_disk`` folder (:func:`toolkit.score.benchmarks.base.read_hf_table`).  Phase 1 is scored
by whether the answer carries the label (``label_accuracy``); Phase 2's official scorer asks an
LLM, so ``metric: judge`` with a ``judge_prompt`` is available too.  ``metric: auto`` takes the
task's Phase-2 metric (:mod:`toolkit.score.dynamic_superb`) where the toolkit reproduces it (WER,
CER, BLEU) and ``label_accuracy`` otherwise; each row records the Phase-2 metric as ``phase2_metric``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit.score.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    BenchmarkError,
    audio_cell_to_file,
    manifest_row,
    read_hf_table,
    require_dir,
    safe_id,
)


@BENCHMARKS.register("dynamic_superb")
class DynamicSuperb(Benchmark):
    """Args:
        root: the task's dataset folder.
        audio_dir: where embedded audio clips are written.
        task: task name used in ids and ``dataset`` (default: the folder name).
        split: split to read (default: ``test`` or the only one).
        metric: ``label_accuracy`` (default), ``consecutive_words``, ``wer``, ``judge`` or ``auto`` (the
            task's Phase-2 metric where reproduced, else ``label_accuracy``).
        judge_prompt: judge template for ``metric: judge`` (see ``data/judge_prompts.yaml``).
    """

    def __init__(self, root: str, audio_dir: str, task: str | None = None, split: str | None = None,
                 metric: str = "label_accuracy", judge_prompt: str = "voicebench_qa"):
        self.root = require_dir(root, "dynamic_superb.root")
        self.audio_dir = Path(audio_dir)
        self.task = task or self.root.name
        self.split = split
        if metric not in ("label_accuracy", "consecutive_words", "wer", "judge", "auto"):
            raise BenchmarkError(f"dynamic_superb.metric: {metric!r} must be label_accuracy, consecutive_words, "
                                 "wer, judge or auto")
        self.phase2_metric = None
        if metric == "auto":
            from toolkit.score.dynamic_superb import RULE_METRICS, task_metric

            try:
                self.phase2_metric = task_metric(self.task)
            except KeyError as err:
                raise BenchmarkError(f"dynamic_superb.task: {err.args[0]}; metric: auto needs it") from None
            metric = RULE_METRICS[self.phase2_metric][1] if self.phase2_metric in RULE_METRICS else "label_accuracy"
        self.metric = metric
        self.judge_prompt = judge_prompt

    def rows(self) -> Iterator[dict[str, Any]]:
        table = read_hf_table(self.root, self.split)
        for i, item in enumerate(table):
            for col in ("audio", "instruction", "label"):
                if col not in item:
                    raise BenchmarkError(f"dynamic_superb {self.root}: column '{col}' missing (columns: {sorted(item)})")
            uid = f"{safe_id(self.task)}_{i:05d}"
            out_dir = self.audio_dir / safe_id(self.task)
            audio = audio_cell_to_file(item["audio"], out_dir, uid, self.root)
            extra: dict[str, Any] = {"task": self.task, "file": item.get("file")}
            if item.get("audio2") is not None:
                extra["audio2"] = audio_cell_to_file(item["audio2"], out_dir, f"{uid}_2", self.root)
            if self.metric == "judge":
                extra["judge_prompt"] = self.judge_prompt
            if self.phase2_metric:
                extra["phase2_metric"] = self.phase2_metric
            yield manifest_row(
                id=uid, dataset=f"dynamic_superb_{safe_id(self.task)}", audio=audio, prompt=item["instruction"],
                reference=item["label"], metric=self.metric, **extra,
            )
