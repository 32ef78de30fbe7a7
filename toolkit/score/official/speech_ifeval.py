"""``speech_ifeval``: a Speech-IFEval output JSONL (one row per item, the model's answer in ``response``).

Two official steps, chosen by ``step``:

* ``ifeval`` (``python -m instruction_following_eval.evaluation_main -i FILE``): rows with
  ``instruction_id_list`` and ``kwargs`` (``closed_ended_questions``, ``creative_writing``); strict
  checks only, as the official; verdict per item = every instruction followed.  Summary: ``prompt-level``,
  ``instruction-level``, the per-category and per-instruction rates, the Speech-IFEval groups (as
  ``group:<name>``) and ``ALL`` (the following rate the leaderboard reports), all as fractions.
* ``llm`` (``python script/llm_evaluation.py -i FILE``): rows with ``metric`` ``accuracy``/``wer``/``cot``
  (``chain-of-thought``, ``closed_ended_questions-woprompt``, and ``closed_ended_questions`` for the
  task-level accuracy with constraints, the README's Table 4).  Needs a judge, or a file that already
  holds the judge's replies in ``eval_response`` (the official ``reports/tmp/<name>.jsonl``).

``auto`` (default): ``ifeval`` when the rows carry ``instruction_id_list``, else ``llm``.  The item id
is the row's ``key``, else its ``id``, else its 0-based index.  ``variant`` picks the IFEval rules:
``speech_ifeval`` (this benchmark's modified copy) or ``ifeval`` (the original, as VoiceBench runs it).
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from toolkit.score import speech_ifeval as rules
from toolkit.score.ifeval import SPEECH_IFEVAL_GROUPS, VARIANTS, check_instruction
from toolkit.score.judges.base import protocol_note
from toolkit.score.predictions import PREDICTION_SCORERS, ItemVerdict, OfficialScore, PredictionScorer

STEPS = ("auto", "ifeval", "llm")


@PREDICTION_SCORERS.register("speech_ifeval")
class SpeechIFEvalPredictions(PredictionScorer):
    official = ("kehanlu/Speech-IFEval@e2e9c14d3609aeb6613c64e3e6c8be44329c476a "
                "instruction_following_eval/evaluation_main.py + script/llm_evaluation.py")
    expected_format = ("a JSONL file, one object per item with 'response' plus either 'instruction_id_list' and "
                       "'kwargs' (IFEval step) or 'instruction', 'metric' (accuracy|wer|cot), 'dataset' and 'label' "
                       "(judged step)")

    def __init__(self, subset: str | None = None, judge: Any = None, seed: int = 0, step: str = "auto",
                 variant: str = "speech_ifeval"):
        """``step``: ``auto``, ``ifeval`` or ``llm`` (see the module docstring); ``variant``: the IFEval rules."""
        super().__init__(subset, judge, seed)
        if step not in STEPS:
            raise ValueError(f"speech_ifeval: step {step!r} is not one of {', '.join(STEPS)}")
        if variant not in VARIANTS:
            raise ValueError(f"speech_ifeval: variant {variant!r} is not one of {', '.join(VARIANTS)}")
        self.step = step
        self.variant = variant

    def score_file(self, path: Path) -> OfficialScore:
        path = Path(path)
        rows = self.read_jsonl(path)
        step = self.step
        if step == "auto":
            step = "ifeval" if "instruction_id_list" in rows[0] else "llm"
        return self._ifeval(path, rows) if step == "ifeval" else self._llm(path, rows)

    @staticmethod
    def _item_id(row: dict[str, Any], index: int) -> str:
        for name in ("key", "id"):
            if row.get(name) is not None:
                return str(row[name])
        return str(index)

    # -- evaluation_main.py ------------------------------------------------------------------

    def _ifeval(self, path: Path, rows: list[dict[str, Any]]) -> OfficialScore:
        items: list[ItemVerdict] = []
        outputs = []
        for i, row in enumerate(rows):
            self.require(path, row, i, ["instruction_id_list", "kwargs", "response"])
            ids, kwargs = row["instruction_id_list"], row["kwargs"]
            if len(kwargs) != len(ids):
                raise self.format_error(path, f"item {i}", f"has {len(ids)} instruction ids but {len(kwargs)} kwargs")
            follow = [check_instruction(iid, row["response"], kw, self.variant) for iid, kw in zip(ids, kwargs)]
            outputs.append((ids, follow))
            missed = [iid for iid, ok in zip(ids, follow) if not ok]
            reason = "every instruction followed" if not missed else f"not followed: {', '.join(missed)}"
            items.append(ItemVerdict(self._item_id(row, i), follow, float(all(follow)), reason))
        summary, lines = _ifeval_report(outputs)
        return OfficialScore(items, summary, [str(len(rows)), "=" * 64, *lines])

    # -- llm_evaluation.py -------------------------------------------------------------------

    def _llm(self, path: Path, rows: list[dict[str, Any]]) -> OfficialScore:
        for i, row in enumerate(rows):
            self.require(path, row, i, ["metric", "response"] if "eval_response" not in row else ["metric"])
            if row["metric"] not in rules.METRICS:
                raise self.format_error(path, f"item {i}", f"metric {row['metric']!r} is not one of "
                                        f"{', '.join(rules.METRICS)} (use step=ifeval for IFEval rows)")
            if row["metric"] != "cot" and not row.get("label"):
                raise self.format_error(path, f"item {i}", f"a '{row['metric']}' row needs a non-empty 'label'")
        replies = self._judge_replies(path, rows)
        notes: dict[str, Any] = {}
        if replies is None:
            items = [ItemVerdict(self._item_id(r, i), None, None, "not judged: no judge given (set --judge)")
                     for i, r in enumerate(rows)]
            return OfficialScore(items, {"count": len(rows), "judged": 0},
                                 [f"{len(rows)} items need a judge; none was given, nothing was scored"])
        judged = [dict(r, eval_response=reply) for r, reply in zip(rows, replies)]
        items = []
        for i, row in enumerate(judged):
            extracted, score, reason = rules.verdict(row["metric"], row["eval_response"], row.get("label"))
            items.append(ItemVerdict(self._item_id(row, i), extracted, score, reason))
        summary, lines = rules.report(judged)
        if self.judge is not None and "eval_response" not in rows[0]:
            notes = {"judge": self.judge.name, "official_judge": rules.JUDGE_MODEL,
                     "judge_protocol": protocol_note(self.judge, rules.judge_protocol("accuracy"))}
        return OfficialScore(items, {**summary, **notes}, lines)

    def _judge_replies(self, path: Path, rows: list[dict[str, Any]]) -> list[str] | None:
        """The judge's reply per row: from the file (``eval_response``) or from ``self.judge``."""
        if all("eval_response" in r for r in rows):
            return [str(r["eval_response"]) for r in rows]
        if any("eval_response" in r for r in rows):
            raise self.format_error(path, "some items", "carry 'eval_response' and others do not; give either the "
                                    "model's output file or the official reports/tmp file, not a mix")
        if self.judge is None:
            return None
        replies: list[str] = [""] * len(rows)
        for metric in rules.METRICS:  # one batch per request protocol (they are equal today, but each has its own)
            idx = [i for i, r in enumerate(rows) if r["metric"] == metric]
            if not idx:
                continue
            convs = [rules.judge_messages(metric, rules.instruction_for_judge(rows[i].get("instruction", ""),
                                                                              path.stem),
                                          rows[i].get("label"), rows[i]["response"]) for i in idx]
            for i, reply in zip(idx, self.judge.ask(convs, rules.judge_protocol(metric))):
                replies[i] = reply
        return replies


def _ifeval_report(outputs: list[tuple[list[str], list[bool]]]) -> tuple[dict[str, Any], list[str]]:
    """``evaluation_main.print_report``: its figures (fractions) under its names, and its lines."""
    prompt_total = prompt_correct = instruction_total = instruction_correct = 0
    tiers = [(collections.defaultdict(int), collections.defaultdict(int)) for _ in range(3)]  # category, id, group
    for ids, follow in outputs:
        prompt_total += 1
        prompt_correct += all(follow)
        instruction_total += len(ids)
        instruction_correct += sum(follow)
        for iid, ok in zip(ids, follow):
            for (total, correct), name in zip(tiers, (iid.split(":")[0], iid, SPEECH_IFEVAL_GROUPS.get(iid, "other"))):
                total[name] += 1
                correct[name] += ok
    summary: dict[str, Any] = {"prompt-level": prompt_correct / prompt_total,
                               "instruction-level": instruction_correct / instruction_total}
    lines = [f"prompt-level: {summary['prompt-level']}", f"instruction-level: {summary['instruction-level']}"]
    for t, (total, correct) in enumerate(tiers):
        lines.append("")
        if t == 2:
            lines.append("===== Speech-IFEval accuracy =====")
        for name in sorted(total):
            value = correct[name] / total[name]
            summary[f"group:{name}" if t == 2 else name] = value
            lines.append(f"{name} {value}")
    summary["ALL"] = instruction_correct / instruction_total
    summary["count"] = prompt_total
    lines += ["", f"ALL: {summary['ALL']}", "==================================="]
    return summary, lines
