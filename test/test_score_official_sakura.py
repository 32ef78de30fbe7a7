"""SAKURA scored item by item against the official ``llm_judge.py`` + ``calculate_acc.py`` on invented predictions.

The expected files in ``test/fixtures/official/sakura/expected/`` were written by running
ckyang1124/SAKURA@a1fdb14 (see that folder's README for the commands).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from official_fixture_judge import OfficialReplayJudge

from toolkit.score import sakura as rules
from toolkit.score.base import score_rows
from toolkit.score.predictions import PredictionFormatError, build_prediction_scorer

FIX = Path(__file__).parent / "fixtures" / "official" / "sakura"
OFFICIAL = json.loads((FIX / "expected" / "animal_single.json").read_text(encoding="utf-8"))


def replay_judge() -> OfficialReplayJudge:
    return OfficialReplayJudge(FIX / "expected" / "requests@animal_single.jsonl", FIX / "judge_replies.json")


def test_judging_agrees_with_the_official_per_item():
    judge = replay_judge()
    result = build_prediction_scorer("sakura", judge=judge).score_file(FIX / "animal_single.json")
    assert len(result.items) == len(OFFICIAL["items"]) == 26
    for item, off in zip(result.items, OFFICIAL["items"]):
        assert item.id == off["key"]
        assert (item.extracted or rules.NO_JUDGEMENT) == off["Judgement"], item.id
        assert item.score == float(off["verdict"] == "correct"), item.id
        assert ("invalid" in item.reason) == (off["verdict"] == "invalid"), item.id
    assert result.lines == OFFICIAL["stdout"]
    assert result.summary["invalid"] == sum(o["verdict"] == "invalid" for o in OFFICIAL["items"]) > 5
    # the request: the official temperature with top_p 0.9, and nothing else (max_tokens is recorded, not sent)
    assert judge.official_requests == [{"temperature": 0.0, "top_p": 0.9}] * 26
    assert judge.requests == [{"temperature": 0.0, "top_p": 0.9}] * 26


def test_user_prompt_keeps_the_official_indentation():
    messages = rules.judge_messages("Q? (a) x (b) y", "(a) x", "x")
    user = messages[1]["content"]
    assert user.startswith("\n    You will be given a question") and user.endswith('"incorrect">\n    ')
    assert "\n    Question: Q? (a) x (b) y\n    Ground truth answer: (a) x\n    Model generated response: x\n" in user
    # placeholders in the official order: a response naming [GROUND_TRUTH_ANSWER] gets the label put in
    tricky = rules.judge_messages("Q", "(c) cow", "It is [GROUND_TRUTH_ANSWER].")[1]["content"]
    assert "Model generated response: It is (c) cow." in tricky


def test_official_judgements_file_is_scored_without_a_judge(tmp_path):
    results = {o["key"]: {"Explanation": o["Explanation"], "Judgement": o["Judgement"]} for o in OFFICIAL["items"]}
    path = tmp_path / "animal_single_judgements.json"
    path.write_text(json.dumps({"judge_model": "gpt-4o-2024-11-20", "results": results}))
    result = build_prediction_scorer("sakura").score_file(path)
    assert [i.score for i in result.items] == [float(o["verdict"] == "correct") for o in OFFICIAL["items"]]
    assert result.lines == OFFICIAL["stdout"] and result.summary["accuracy"] == 30.77


def test_parsing_is_not_more_lenient_than_calculate_acc():
    assert rules.judgement_score("Explanation: e\nJudgement: correct") == 1.0
    assert rules.judgement_score("Explanation: e\nJudgement: Incorrect\n\nmore") == 0.0
    for reply in ('Explanation: e\nJudgement: "correct"', "Explanation: e\nJudgement: correct.",
                  "Judgement: correct", "explanation: e\njudgement: correct"):
        assert rules.judgement_score(reply) is None, reply


def test_stage7_judge_scorer_uses_the_same_prompt_and_parser():
    data = json.loads((FIX / "animal_single.json").read_text(encoding="utf-8"))["results"]
    rows = [{"id": f"u{i}", "metric": "judge", "judge_prompt": "sakura", "dataset": "sakura_animal_single",
             "prompt": r["instruction"], "reference": r["label"], "prediction": r["response"]}
            for i, r in enumerate(data.values())]
    judge = replay_judge()
    (res,) = score_rows(rows, "sakura", judge=judge, breakdown=())
    expected = {"correct": 1.0, "incorrect": 0.0, "invalid": None}
    assert [r["score"] for r in rows] == [expected[o["verdict"]] for o in OFFICIAL["items"]]
    assert res.value == pytest.approx(30.77, abs=0.005) and res.extra["unparsed"] == 11
    assert judge.requests == [{"temperature": 0.0, "top_p": 0.9}] * 26


def test_without_judge_and_bad_file(tmp_path):
    result = build_prediction_scorer("sakura").score_file(FIX / "animal_single.json")
    assert all(i.score is None for i in result.items) and result.summary == {"total": 26, "judged": 0}
    bad = tmp_path / "track.json"
    bad.write_text(json.dumps({"results": {"a.wav": {"instruction": "q", "label": "l"}}}))
    with pytest.raises(PredictionFormatError, match=r"track.json: item 0: field 'response' is missing"):
        build_prediction_scorer("sakura").score_file(bad)
    bad.write_text("[]")
    with pytest.raises(PredictionFormatError, match="no non-empty 'results'"):
        build_prediction_scorer("sakura").score_file(bad)
