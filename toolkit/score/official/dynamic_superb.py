"""``dynamic_superb``: one Dynamic-SUPERB Phase-2 task's prediction JSONL, scored by that task's metric.

A row is one test example as the Phase-2 evaluation holds it: ``label`` (the reference),
``instruction``, an id (``id``, else ``example_id``, else ``file``, else the row index) and the
model's answer under ``prediction`` (``prediction_key`` names another key).  The task is
``--subset`` (default: the file's stem, the way the Phase-2 evaluation names its per-task files).
The task's metric comes from :func:`toolkit.score.dynamic_superb.task_metric`.

Reproduced metrics (:data:`toolkit.score.dynamic_superb.RULE_METRICS`): ``word_error_rate`` and
``character_error_rate`` (corpus rate over the rows after ``normalizer``, per item the row's own
rate) and ``sacre_bleu`` (corpus BLEU, per item the sentence BLEU).  They use the toolkit's one
implementation of each, the one stage 7's ``wer``/``cer``/``bleu`` scorers use; the official
metric code could not be read here, so the summary carries ``verified_against_official: false``.
A task of any other metric (``llm_classification`` and the task-specific ones) is reported with
every item unscored and the reason, never with a substitute rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.score.dynamic_superb import RULE_METRICS, TABLE_SOURCE, task_metric
from toolkit.score.predictions import (
    PREDICTION_SCORERS,
    ItemVerdict,
    OfficialScore,
    PredictionFormatError,
    PredictionScorer,
)


@PREDICTION_SCORERS.register("dynamic_superb")
class DynamicSuperbPredictions(PredictionScorer):
    """Args:
        prediction_key: the row key holding the model's answer.
        normalizer: text normaliser before WER/CER (``basic``: Whisper's BasicTextNormalizer,
            ``english``, ``none``); the official choice is not known here.
    """

    official = TABLE_SOURCE  # the dispatch table; the official metric code itself was not readable here
    expected_format = ("a JSONL file of one Phase-2 task, one row per example with 'label' and the model's answer "
                       "under 'prediction' (ids from 'id', 'example_id' or 'file')")

    def __init__(self, subset: str | None = None, judge: Any = None, seed: int = 0,
                 prediction_key: str = "prediction", normalizer: str = "basic"):
        super().__init__(subset, judge, seed)
        self.prediction_key = prediction_key
        self.normalizer = normalizer

    def score_file(self, path: Path) -> OfficialScore:
        path = Path(path)
        task = self.subset or path.stem
        try:
            metric = task_metric(task)
        except KeyError as err:
            raise PredictionFormatError(f"{path}: {err.args[0]} (pass it with --subset)") from None
        rows = self.read_jsonl(path)
        ids = []
        for index, row in enumerate(rows):
            self.require(path, row, index, ("label", self.prediction_key))
            ids.append(str(next((row[k] for k in ("id", "example_id", "file") if k in row), index)))
        summary: dict[str, Any] = {"task": task, "metric": metric, "count": len(rows),
                                   "verified_against_official": False}
        if metric not in RULE_METRICS:
            why = (f"metric {metric} of the Phase-2 evaluation is not reproduced (its code could not be read "
                   "here); not scored")
            summary.update({metric: None, "unscored": len(rows)})
            return OfficialScore([ItemVerdict(i, None, None, why) for i in ids], summary,
                                 [f"{task}: {metric}: not scored ({len(rows)} items): {why}"])
        refs = [str(r["label"]) for r in rows]
        hyps = [str(r[self.prediction_key] or "") for r in rows]
        unit, _ = RULE_METRICS[metric]
        items, value = self._rule_metric(unit, ids, refs, hyps)
        summary.update({metric: value, "unscored": sum(v.score is None for v in items)})
        if unit != "bleu":
            summary["normalizer"] = self.normalizer
        line = (f"{task}: {metric} = {value:.2f} over {len(rows)} items "
                "(toolkit rules; not verified against the official code)")
        return OfficialScore(items, summary, [line])

    def _rule_metric(self, unit: str, ids: list[str], refs: list[str],
                     hyps: list[str]) -> tuple[list[ItemVerdict], float]:
        from toolkit.metrics import bleu, error_rate, normalize

        if unit == "bleu":
            items = [ItemVerdict(i, h, bleu([r], [h]), "sentence BLEU (sacrebleu, 13a)")
                     for i, r, h in zip(ids, refs, hyps)]
            return items, bleu(refs, hyps)
        items = []
        for i, r, h in zip(ids, refs, hyps):
            one = error_rate([r], [h], unit, self.normalizer)
            if one["count"]:
                edits = one["substitutions"] + one["deletions"] + one["insertions"]
                items.append(ItemVerdict(i, normalize(h, self.normalizer), one["value"],
                                         f"{edits} edit(s) over {one['reference_units']} reference {unit}s"))
            else:
                items.append(ItemVerdict(i, normalize(h, self.normalizer), None,
                                         "empty reference after normalising: not counted"))
        return items, error_rate(refs, hyps, unit, self.normalizer)["value"]
