"""``judge``: answers graded by an LLM judge with the benchmark's own prompt.

Each row names its prompt in ``judge_prompt`` (``sakura``, ``speech_ifeval_accuracy``,
``speech_ifeval_cot``, ``voicebench_qa``, ``voicebench_open``; see ``data/judge_prompts.yaml``);
rows without one use ``default_prompt``.  One result per prompt: the percentage judged correct
(the mean 1-5 rating for ``rating`` prompts); answers the judge gave in no parsable format count
as wrong (SAKURA and Speech-IFEval count them in the total too) and are reported as
``unparsed`` (for ratings they are left out of the mean, where VoiceBench would crash).
Every row carries the judge's name; the judge's raw answer is kept per utterance, and a row
already judged by the same judge is not sent again (breakdowns reuse it).

Each prompt is asked with its official protocol (``protocol`` in the prompt file, see
:class:`~toolkit.score.judges.base.JudgeProtocol`): one answer with the official request fields
(:meth:`Judge.ask`; SAKURA's temperature 0 and top_p 0.9, Speech-IFEval's none), or several sampled
answers (:meth:`Judge.sample`; VoiceBench's 3 at temperature 0.5, top_p 0.95; ``judge_outputs`` keeps
them) aggregated as the benchmark does (mean rating of every sample; majority vote, correct when the
winning answer is exactly "yes").  Every result row says in ``extra.judge_protocol`` how the judge was
asked, beside the official protocol (:func:`~toolkit.score.judges.base.protocol_note`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from toolkit.score.base import SCORERS, ResultRow, Scorer, percent
from toolkit.score.judges.base import Judge, protocol_note
from toolkit.score.judges.prompts import get_prompt


@SCORERS.register("judge")
class JudgeScorer(Scorer):
    needs_judge = True

    def __init__(self, judge: Judge, default_prompt: str = "voicebench_qa"):
        get_prompt(default_prompt)  # fail early on a typo
        self.judge = judge
        self.default_prompt = default_prompt

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_prompt[r.get("judge_prompt") or self.default_prompt].append(r)
        results = []
        for name, group in by_prompt.items():
            prompt = get_prompt(name)
            if prompt.protocol is not None and prompt.protocol.aggregate is not None:
                results.append(self._score_aggregated(name, prompt, group))
                continue
            todo = [r for r in group if r.get("judge_name") != self.judge.name or "judge_output" not in r]
            convs = [self._messages(prompt, r) for r in todo]
            answers = [] if not todo else (self.judge.generate(convs) if prompt.protocol is None
                                           else self.judge.ask(convs, prompt.protocol))
            for r, answer in zip(todo, answers):
                r["judge_output"] = answer
                r["judge_name"] = self.judge.name
            scores = []
            for r in group:
                r["score"] = prompt.parse(r["judge_output"])
                scores.append(r["score"])
            unparsed = sum(s is None for s in scores)
            if prompt.parser == "rating":
                valid = [s for s in scores if s is not None]
                value = sum(valid) / len(valid) if valid else float("nan")
                metric = f"judge_rating[{name}]"
            else:
                value = percent(sum(s or 0.0 for s in scores), len(scores))
                metric = f"judge_accuracy[{name}]"
            extra = {"unparsed": unparsed, "prompt_source": prompt.source,
                     "judge_protocol": protocol_note(self.judge, prompt.protocol)}
            results.append(ResultRow("", metric, value, len(group), self.judge.name, extra))
        return results

    @staticmethod
    def _messages(prompt: Any, r: dict[str, Any]) -> list[dict[str, str]]:
        return prompt.messages(str(r.get("prompt") or ""), str(r.get("reference") or ""),
                               str(r.get("prediction") or ""))

    def _score_aggregated(self, name: str, prompt: Any, group: list[dict[str, Any]]) -> ResultRow:
        """A protocol with an aggregate (VoiceBench: 3 samples, mean or majority) through the rules that score
        its result files (:mod:`toolkit.score.voicebench`); unparsed ratings are left out and counted."""
        from toolkit.score.voicebench import evaluate_open, evaluate_qa

        protocol = prompt.protocol
        todo = [r for r in group if r.get("judge_name") != self.judge.name or "judge_outputs" not in r]
        sampled = self.judge.sample([self._messages(prompt, r) for r in todo], protocol) if todo else []
        for r, answers in zip(todo, sampled):
            r["judge_outputs"], r["judge_name"] = answers, self.judge.name
        items = [{"score": r["judge_outputs"], "prompt": r.get("prompt"), "response": r.get("prediction"),
                  "reference": r.get("reference")} for r in group]
        ids = [str(r.get("id")) for r in group]
        if protocol.aggregate == "mean":
            result = evaluate_open(items, ids, skip_unparsed=True)
            value, metric = result.summary["gpt"], f"judge_rating[{name}]"
        else:
            result = evaluate_qa(items, ids, pedant=None)
            value, metric = result.summary["gpt"], f"judge_accuracy[{name}]"
        for r, v in zip(group, result.items):
            r["score"] = v.score
        extra = {"unparsed": result.summary.get("unparsed", 0), "prompt_source": prompt.source,
                 "judge_protocol": protocol_note(self.judge, protocol)}
        return ResultRow("", metric, value, len(group), self.judge.name, extra)
