"""``speech_ifeval_llm``: Speech-IFEval's judged steps (``script/llm_evaluation.py``) on stage-7 decode rows.

Rows carry ``task_metric`` (``accuracy``, ``wer`` or ``cot``, the benchmark row's own ``metric``),
``prompt`` (the instruction), ``reference`` (the label) and ``prediction``.  The rules are
:mod:`toolkit.score.speech_ifeval`'s, the same ones ``score_predictions`` runs: the judge answers each
row with the official prompt and request (no sampling fields), ``accuracy`` rows are scored per
``dataset``, ``cot`` rows as one group, and ``wer`` rows by the corpus WER of the transcript the
judge cut out of the answer, after the Basic normaliser.  Results (percent): ``speech_ifeval_acc``
(one per dataset, ``[dataset]`` in the metric name), ``speech_ifeval_cot``, ``speech_ifeval_wer``
(lower is better).  Replies without ``Result: YES/NO`` count as wrong and are reported as ``unparsed``.
"""

from __future__ import annotations

from typing import Any

from toolkit.score import speech_ifeval as rules
from toolkit.score.base import SCORERS, ResultRow, Scorer, ScoreError
from toolkit.score.judges.base import Judge, protocol_note


@SCORERS.register("speech_ifeval_llm")
class SpeechIFEvalLLMScorer(Scorer):
    needs_judge = True

    def __init__(self, judge: Judge):
        self.judge = judge

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        for r in rows:
            if r.get("task_metric") not in rules.METRICS:
                raise ScoreError(f"row id={r.get('id')!r}: metric speech_ifeval_llm needs 'task_metric' in "
                                 f"{rules.METRICS} (from the Speech-IFEval loader), got {r.get('task_metric')!r}")
        for metric in rules.METRICS:
            todo = [r for r in rows if r["task_metric"] == metric
                    and (r.get("judge_name") != self.judge.name or "judge_output" not in r)]
            if not todo:
                continue
            convs = [rules.judge_messages(metric, str(r.get("prompt") or ""), r.get("reference"),
                                          str(r.get("prediction") or "")) for r in todo]
            for r, answer in zip(todo, self.judge.ask(convs, rules.judge_protocol(metric))):
                r["judge_output"], r["judge_name"] = answer, self.judge.name
        judged = [{"metric": r["task_metric"], "dataset": r.get("dataset"), "label": r.get("reference"),
                   "eval_response": r["judge_output"]} for r in rows]
        for r, j in zip(rows, judged):
            extracted, r["score"], _ = rules.verdict(j["metric"], j["eval_response"], j["label"])
            if j["metric"] == "wer":
                r["normalized_prediction"] = extracted
        summary, _ = rules.report(judged)
        extra = {"judge_protocol": protocol_note(self.judge, rules.judge_protocol("accuracy"))}
        results = []
        for key, value in summary.items():
            if key == "WER":
                n = sum(j["metric"] == "wer" for j in judged)
                results.append(ResultRow("", "speech_ifeval_wer", 100.0 * value, n, self.judge.name, dict(extra)))
            elif key.endswith(" ACC"):
                group = key[: -len(" ACC")]
                members = [j for j in judged if (j["metric"] == "cot" if group == "cot" else
                                                 j["metric"] == "accuracy" and str(j["dataset"]) == group)]
                unparsed = sum(rules.extract_result(j["eval_response"]) is None for j in members)
                metric = "speech_ifeval_cot" if group == "cot" else f"speech_ifeval_acc[{group}]"
                results.append(ResultRow("", metric, 100.0 * value, len(members), self.judge.name,
                                         {**extra, "unparsed": unparsed}))
        return results
