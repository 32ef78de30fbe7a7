"""``judge``: answers graded by an LLM judge with the benchmark's own prompt.

Each row names its prompt in ``judge_prompt`` (``sakura``, ``speech_ifeval_accuracy``,
``speech_ifeval_cot``, ``voicebench_qa``, ``voicebench_open``; see ``data/judge_prompts.yaml``);
rows without one use ``default_prompt``.  One result per prompt: the percentage judged correct
(the mean 1-5 rating for ``rating`` prompts); answers the judge gave in no parsable format count
as wrong (SAKURA and Speech-IFEval count them in the total too) and are reported as
``unparsed`` (for ratings they are left out of the mean, where VoiceBench would crash).
Every row carries the judge's name; the judge's raw answer is kept per utterance, and a row
already judged by the same judge is not sent again (breakdowns reuse it).

A prompt's official request fields (``request`` in the prompt file: SAKURA's temperature 0 and top_p
0.9, Speech-IFEval's none) go with every call (:meth:`Judge.ask`); ``judge_protocol`` says whether the
judge applied them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from toolkit.score.base import SCORERS, ResultRow, Scorer, percent
from toolkit.score.judges.base import Judge, request_note
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
            todo = [r for r in group if r.get("judge_name") != self.judge.name or "judge_output" not in r]
            convs = [prompt.messages(str(r.get("prompt") or ""), str(r.get("reference") or ""), str(r.get("prediction") or ""))
                     for r in todo]
            answers = [] if not todo else (self.judge.generate(convs) if prompt.request is None
                                           else self.judge.ask(convs, prompt.request))
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
            results.append(ResultRow("", metric, value, len(group), self.judge.name,
                                     {"unparsed": unparsed, "prompt_source": prompt.source,
                                      "judge_protocol": "1 greedy answer" if prompt.request is None
                                      else request_note(self.judge, prompt.request)}))
        return results
