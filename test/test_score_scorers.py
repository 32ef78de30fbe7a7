"""score_rows / score_file with every scorer on hand-made decode rows whose scores are known."""

import json
import math

import pytest

from toolkit.jsonl import JsonlError

from toolkit.score.base import ScoreError, score_file, score_rows
from toolkit.score.judges.base import Judge


def rows_of(metric, items, **common):
    return [{"id": f"{metric}{i}", "dataset": "d", "metric": metric, **common, **it} for i, it in enumerate(items)]


def by_metric(results):
    return {r.metric: r for r in results}


def test_wer_and_label_accuracy_and_consecutive_words():
    rows = rows_of("wer", [{"prediction": "hello world", "reference": "Hello world!"},
                           {"prediction": "a b", "reference": "a b c d"}])
    rows += rows_of("label_accuracy", [{"prediction": "It is happy.", "reference": "happy"},
                                       {"prediction": "sad", "reference": "happy"},
                                       {"prediction": "two people", "reference": ["2 people", "two speakers"]}])
    rows += rows_of("consecutive_words", [{"prediction": "a dog barks", "reference": "dog barks"}])
    res = by_metric(score_rows(rows, "s"))
    assert res["wer"].value == pytest.approx(100 * 2 / 6) and res["wer"].count == 2
    assert res["label_accuracy"].value == pytest.approx(200 / 3)
    assert res["consecutive_words"].value == 100.0
    assert rows[3]["score"] == 0 and rows[2]["score"] == 1
    assert all(r.set == "s" and r.judge is None for r in res.values())


def test_mc_accuracy_seeded_fill_and_failure_rate():
    items = [{"prediction": "The answer is B", "reference": "B"},
             {"prediction": "(a) cat", "reference": "cat", "choices": ["cat", "dog", "cow", "pig"]},
             {"prediction": "I cannot tell", "reference": "C"},
             {"prediction": "no idea at all", "reference": "D"}]
    rows = rows_of("mc_accuracy", items)
    first = score_rows(rows, "s")[0]
    again = score_rows(rows_of("mc_accuracy", items), "s")[0]
    assert first.extra["parse_failures"] == 2 and first.extra["parse_failure_rate"] == 50.0
    assert first.value == again.value  # seeded: same fill every run
    assert 50.0 <= first.value <= 100.0
    filled = [r["random_choice"] for r in rows if "random_choice" in r]
    assert len(filled) == 2 and all(c in "ABCD" for c in filled)
    strict = score_rows(rows_of("mc_accuracy", items), "s", {"mc_accuracy": {"random_fill": False}})[0]
    assert strict.value == 50.0


def test_mmau_breakdown_by_task():
    choices = ["Man", "Woman"]
    rows = rows_of("mmau", [{"prediction": "Man", "reference": "Man", "choices": choices, "task": "speech"},
                            {"prediction": "Man and Woman", "reference": "Man", "choices": choices, "task": "speech"},
                            {"prediction": "Woman", "reference": "Woman", "choices": choices, "task": "sound"}])
    res = {(r.set, r.metric): r for r in score_rows(rows, "mmau_mini")}
    assert res[("mmau_mini", "mmau")].value == pytest.approx(200 / 3)
    assert res[("mmau_mini[task=speech]", "mmau")].value == 50.0
    assert res[("mmau_mini[task=sound]", "mmau")].value == 100.0


def test_ifeval_scorer_rates():
    rows = rows_of("ifeval", [
        {"prediction": "HAPPY", "instruction_id_list": ["change_case:english_capital"], "kwargs": [{}]},
        {"prediction": "Sure:\nHAPPY", "instruction_id_list": ["change_case:english_capital"], "kwargs": [{}]},
        {"prediction": '"happy"', "instruction_id_list": ["startend:quotation", "change_case:english_capital"],
         "kwargs": [{}, {}]},
    ])
    res = by_metric(score_rows(rows, "s"))
    assert res["ifeval_instruction_strict"].value == pytest.approx(50.0)  # 2 of 4
    assert res["ifeval_prompt_strict"].value == pytest.approx(100 / 3)
    assert res["ifeval_prompt_loose"].value == pytest.approx(200 / 3)
    assert res["ifeval_instruction_strict"].extra["groups"]["change_case"] == pytest.approx(100 / 3)


def test_bleu_refusal():
    res = by_metric(score_rows(
        rows_of("bleu", [{"prediction": "the cat sat on the mat", "reference": "the cat sat on the mat"}])
        + rows_of("refusal", [{"prediction": "I'm sorry, I can't help."}, {"prediction": "Sure, here is how"},
                              {"prediction": " "}]),
        "s"))
    assert res["bleu"].value == pytest.approx(100.0)
    assert res["refusal"].value == pytest.approx(200 / 3)


class FakeJudge(Judge):
    """Says 'Judgement: correct' when the reference word appears in the answer; counts calls."""

    def __init__(self):
        self.calls = 0
        self.requests = []

    @property
    def name(self):
        return "fake:judge"

    def sample(self, conversations, protocol):
        self.requests.append(protocol.request)
        return super().sample(conversations, protocol)  # a protocol that does not sample: the greedy answer

    def generate(self, conversations):
        self.calls += len(conversations)
        out = []
        for conv in conversations:
            user = conv[-1]["content"]
            ref = user.split("Ground truth answer: ")[-1].split("\n")[0].strip()
            pred = user.split("Model generated response: ")[-1].split("\n")[0]
            verdict = "correct" if ref.split()[-1].lower() in pred.lower() else "incorrect"
            out.append(f"Explanation: because.\nJudgement: {verdict}" if "garbled" not in pred else "no format")
        return out


def test_judge_scorer_names_judge_and_reuses_answers():
    rows = rows_of("judge", [{"prediction": "a dog", "reference": "(a) dog", "dataset": "x"},
                             {"prediction": "a cat", "reference": "(b) dog", "dataset": "x"},
                             {"prediction": "garbled", "reference": "(a) dog", "dataset": "y"}],
                   judge_prompt="sakura", prompt="Which animal? (a) dog (b) cat")
    judge = FakeJudge()
    results = score_rows(rows, "sakura", judge=judge)
    overall = [r for r in results if r.set == "sakura"][0]
    assert overall.metric == "judge_accuracy[sakura]" and overall.judge == "fake:judge"
    assert overall.value == pytest.approx(100 / 3) and overall.extra["unparsed"] == 1
    assert judge.calls == 3  # the per-dataset breakdown reused the answers
    assert judge.requests == [{"temperature": 0.0, "top_p": 0.9}]  # SAKURA's official request fields
    assert {r.set for r in results} == {"sakura", "sakura[dataset=x]", "sakura[dataset=y]"}


def test_judged_metric_without_judge_is_reported_skipped():
    res = score_rows(rows_of("judge", [{"prediction": "x", "reference": "y"}]), "s")
    assert len(res) == 1 and math.isnan(res[0].value) and "no judge" in res[0].extra["skipped"]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ScoreError, match="no scorer for metric"):
        score_rows(rows_of("bogus", [{"prediction": "x"}]), "s")
    with pytest.raises(ScoreError, match="has no 'metric'"):
        score_rows([{"id": "a", "prediction": "x"}], "s")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\nnot json\n')
    with pytest.raises(JsonlError, match="bad.jsonl:2"):
        score_file(bad)


def test_score_file_writes_details(tmp_path):
    path = tmp_path / "mmau_mini" / "decode.jsonl"
    path.parent.mkdir()
    rows = rows_of("wer", [{"prediction": "a b", "reference": "a c"}])
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = score_file(path, details_out=tmp_path / "details.jsonl")
    assert res[0].set == "mmau_mini" and res[0].value == 50.0
    detail = json.loads((tmp_path / "details.jsonl").read_text())
    assert detail["score"] == 50.0 and detail["normalized_prediction"] == "a b"
