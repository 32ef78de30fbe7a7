"""``sakura``: one SAKURA track's JSON (``{"attribute", "type", "results": {audio key: {...}}}``).

Either the model's output file (each result with ``instruction``, ``response``, ``label``), judged
here as ``llm_judge.py`` judges it (its prompt byte for byte, temperature 0.0 and top_p 0.9 sent;
any judge: ``--judge name=openai model=gpt-4o-2024-11-20`` is the official one), or the official
``<model>_judgements.json`` (each result with ``Judgement``), which needs no judge.  Verdicts and
accuracy as ``calculate_acc.py``: only ``correct``/``incorrect`` after ``lower().strip()`` count; other
judgements are invalid, kept in the total and listed.  The item id is the audio key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolkit.score import sakura as rules
from toolkit.score.judges.base import protocol_note
from toolkit.score.predictions import PREDICTION_SCORERS, ItemVerdict, OfficialScore, PredictionScorer

_REASONS = {"correct": "judged correct", "incorrect": "judged incorrect",
            "invalid": "invalid judgement (neither 'correct' nor 'incorrect'); counted in the total, not correct"}


@PREDICTION_SCORERS.register("sakura")
class SakuraPredictions(PredictionScorer):
    official = "ckyang1124/SAKURA@a1fdb146f638fe4740c20a31ba6da868f2cb2313 evaluation/llm_judge.py + calculate_acc.py"
    expected_format = ("a JSON object with 'results': {audio key: {'instruction', 'response', 'label'}} (the model's "
                       "output) or {audio key: {'Judgement', ...}} (the official judgements file)")

    def score_file(self, path: Path) -> OfficialScore:
        path = Path(path)
        results = self._read(path)
        judged = all("Judgement" in r for r in results.values())
        notes: dict[str, Any] = {}
        if judged:
            judgements = {k: str(r["Judgement"]) for k, r in results.items()}
        else:
            for i, (key, r) in enumerate(results.items()):
                self.require(path, r, i, ["instruction", "response", "label"])
            if self.judge is None:
                items = [ItemVerdict(k, None, None, "not judged: no judge given (set --judge)") for k in results]
                return OfficialScore(items, {"total": len(items), "judged": 0},
                                     [f"{len(items)} items need a judge; none was given, nothing was scored"])
            convs = [rules.judge_messages(str(r["instruction"]), str(r["label"]), str(r["response"]))
                     for r in results.values()]
            replies = self.judge.ask(convs, rules.judge_protocol())
            judgements = {k: rules.extract_judgement(reply)["Judgement"] for k, reply in zip(results, replies)}
            notes = {"judge": self.judge.name, "judge_protocol": protocol_note(self.judge, rules.judge_protocol()),
                     "official_judge": rules.JUDGE_MODEL}
        items = []
        for key, judgement in judgements.items():
            verdict = rules.judgement_verdict(judgement)
            extracted = None if judgement == rules.NO_JUDGEMENT else judgement
            items.append(ItemVerdict(key, extracted, float(verdict == "correct"), _REASONS[verdict]))
        summary, lines = rules.accuracy_report(judgements)
        return OfficialScore(items, {**summary, **notes}, lines)

    def _read(self, path: Path) -> dict[str, dict[str, Any]]:
        if not path.is_file():
            raise self.format_error(path, "whole file", "does not exist; fix --predictions")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise self.format_error(path, "whole file", f"is not valid JSON ({err})") from None
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not data["results"]:
            raise self.format_error(path, "whole file", "has no non-empty 'results' object")
        for i, (key, r) in enumerate(data["results"].items()):
            if not isinstance(r, dict):
                raise self.format_error(path, f"results[{key!r}]", f"is a {type(r).__name__}, not an object")
        return data["results"]
