"""``voicebench``: a VoiceBench result file (the JSONL its ``evaluate.py`` reads) scored by its official rules.

The file is VoiceBench's own: one JSON object per line with the dataset's fields (``prompt``,
``reference``, ``id``, ``instruction_id_list`` ...) plus the model's ``response``, as ``main.py``
writes it, and for the judged subsets the judge's answers in ``score``, as ``api_judge.py`` writes
them.  ``subset`` picks the evaluator: a subset name (``mmsu``, ``sd-qa``, ``advbench`` ...) or an
evaluator name (``mcq``, ``qa``, ``harm``, ``ifeval``, ``bbh``, ``open``); without one it is read
from a file name of the official form ``<model>-<subset>-<split>-<modality>.jsonl``.

The rules are in :mod:`toolkit.score.voicebench` (shared with stage 7).  Judged rows without
``score`` are sent to the given judge with the official protocol (3 samples, temperature 0.5,
top_p 0.95; mean for open, majority for qa); without a judge they are reported unscored.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from toolkit.score.predictions import PREDICTION_SCORERS, ItemVerdict, OfficialScore, PredictionScorer
from toolkit.score.voicebench import (
    EVALUATORS,
    OFFICIAL_COMMIT,
    OFFICIAL_REPO,
    SUBSET_EVALUATOR,
    VoiceBenchError,
    evaluate_bbh,
    evaluate_harm,
    evaluate_ifeval,
    evaluate_mcq,
    evaluate_open,
    evaluate_qa,
    judge_items,
    load_pedant,
)

REQUIRED = {
    "mcq": ("response", "reference"),
    "bbh": ("id", "response", "reference"),
    "harm": ("response",),
    "ifeval": ("prompt", "response", "instruction_id_list", "kwargs"),
    "open": ("prompt", "response"),
    "qa": ("prompt", "response", "reference"),
}


@PREDICTION_SCORERS.register("voicebench")
class VoiceBenchPredictions(PredictionScorer):
    """Args:
        subset: the subset or evaluator (see the module docstring).
        judge: the judge for open/qa rows that carry no ``score`` yet.
        seed: seeds the random answer mcq and bbh give an unparsed reply.
        fix_quirks: bbh only: correct the three verdicts the official phrase tables get backwards
            (:mod:`toolkit.score.voicebench_bbh`); off by default, as the published numbers.
        skip_unparsed: open only: leave out judge answers with no rating (the official code stops).
        pedant: qa only: compute ``panda`` with PEDANT (needs its classifier files; see
            :func:`toolkit.score.voicebench.pedant_classifier_dir`); ``false`` reports ``gpt`` alone.
        pedant_dir: the folder holding PEDANT's four classifier files.
    """

    official = f"{OFFICIAL_REPO}@{OFFICIAL_COMMIT} evaluate.py + src/evaluator/*.py + api_judge.py"
    expected_format = ("VoiceBench's result JSONL (one object per line: the dataset's fields plus 'response', "
                       "and 'score' from api_judge.py for the judged subsets)")

    def __init__(self, subset: str | None = None, judge: Any = None, seed: int = 0, fix_quirks: bool = False,
                 skip_unparsed: bool = False, pedant: bool = True, pedant_dir: str | None = None):
        super().__init__(subset, judge, seed)
        if subset is not None and subset not in SUBSET_EVALUATOR and subset not in EVALUATORS:
            raise VoiceBenchError(f"voicebench --subset {subset!r}: not a subset ({', '.join(SUBSET_EVALUATOR)}) "
                                  f"nor an evaluator ({', '.join(EVALUATORS)})")
        self.fix_quirks = fix_quirks
        self.skip_unparsed = skip_unparsed
        self.pedant = pedant
        self.pedant_dir = pedant_dir

    def evaluator(self, path: Path) -> str:
        """The official evaluator for this file: from ``subset``, else from the official file name."""
        if self.subset is not None:
            return SUBSET_EVALUATOR.get(self.subset, self.subset)
        name = re.sub(r"^result-", "", path.name)
        found = [s for s in SUBSET_EVALUATOR if re.search(rf"(^|-){re.escape(s)}-", name)]
        if len(found) != 1:
            raise VoiceBenchError(f"{path}: say which VoiceBench subset this file holds with --subset (one of "
                                  f"{', '.join(SUBSET_EVALUATOR)}, or an evaluator: {', '.join(EVALUATORS)}); the "
                                  f"file name does not follow <model>-<subset>-<split>-<modality>.jsonl")
        return SUBSET_EVALUATOR[max(found, key=len)]  # alpacaeval_full over alpacaeval

    def score_file(self, path: Path) -> OfficialScore:
        path = Path(path)
        evaluator = self.evaluator(path)
        rows = self.read_jsonl(path)
        for i, row in enumerate(rows):
            self.require(path, row, i, REQUIRED[evaluator])
        ids = [str(row["id"]) if "id" in row else str(i) for i, row in enumerate(rows)]
        from toolkit.score.ifeval import IFEvalError
        from toolkit.score.voicebench_bbh import BbhError

        try:
            return self._score(evaluator, rows, ids, path)
        except (VoiceBenchError, IFEvalError, BbhError) as err:  # a row the official evaluator could not score either
            raise self.format_error(path, "scoring", str(err)) from None

    def _score(self, evaluator: str, rows: list[dict[str, Any]], ids: list[str], path: Path) -> OfficialScore:
        if evaluator == "mcq":
            return evaluate_mcq(rows, ids, self.seed)
        if evaluator == "bbh":
            return evaluate_bbh(rows, ids, self.seed, self.fix_quirks)
        if evaluator == "harm":
            return evaluate_harm(rows, ids)
        if evaluator == "ifeval":
            return evaluate_ifeval(rows, ids)
        # open / qa: the judge's answers come from the file or from the judge given.  PEDANT is loaded
        # first, so a missing classifier file fails before any judge request is spent.
        pedant = load_pedant(self.pedant_dir) if evaluator == "qa" and self.pedant else None
        missing = [uid for row, uid in zip(rows, ids) if "score" not in row]
        judge_note = "judge answers from the file (api_judge.py: gpt-4o-mini, 3 samples, temperature 0.5, top_p 0.95)"
        if missing and self.judge is None:
            if len(missing) < len(rows):
                raise VoiceBenchError(f"items {missing[:5]} have no 'score' while others do; judge them all "
                                      f"(--judge ...) or none")
            return self._unjudged(evaluator, ids)
        if missing:
            _, judge_note = judge_items([r for r in rows if "score" not in r], self.judge)
        if evaluator == "open":
            result = evaluate_open(rows, ids, self.skip_unparsed)
        else:
            result = evaluate_qa(rows, ids, pedant)
        result.summary["judge"] = judge_note
        result.lines.append(judge_note)
        return result

    def _unjudged(self, evaluator: str, ids: list[str]) -> OfficialScore:
        reason = "not judged: the row has no 'score' and no judge was given (--judge name=openai ...)"
        items = [ItemVerdict(uid, None, None, reason) for uid in ids]
        summary = {"gpt": math.nan, "count": len(ids), "judged": 0}
        return OfficialScore(items, summary, [f"{evaluator}: gpt - (no row judged: pass --judge, or score the "
                                              f"result-*.jsonl that api_judge.py writes)"])
