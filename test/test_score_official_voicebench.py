"""VoiceBench scored by its official rules: per-item agreement with the official evaluator, judge protocol, stage 7.

The fixtures (``test/fixtures/official/voicebench/``) hold invented answers and the verdicts the official
evaluator gave them (see the README there for the repository, commit and command).
"""

import json
from pathlib import Path

import pytest

from toolkit.score.base import score_rows
from toolkit.score.ifeval import check_instruction, evaluate_response
from toolkit.score.judges.base import Judge, JudgeProtocol, protocol_note
from toolkit.score.judges.prompts import get_prompt
from toolkit.score.predictions import PredictionFormatError, build_prediction_scorer
from toolkit.score.voicebench import PedantUnavailable, evaluate_mcq, ifeval_response, is_refusal
from toolkit.score.voicebench_bbh import extract_bbh

FIXTURES = Path(__file__).parent / "fixtures" / "official" / "voicebench"


def load(name):
    rows = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    return rows, json.loads((FIXTURES / f"{name}.expected.json").read_text(encoding="utf-8"))


def score(subset, name, **options):
    return build_prediction_scorer("voicebench", subset=subset, options=options).score_file(FIXTURES / f"{name}.jsonl")


def test_mcq_agrees_with_official_per_item_and_fail_rate():
    rows, expected = load("mcq")
    result = score("mmsu", "mcq")
    assert [v.extracted for v in result.items] == [e["extracted"] for e in expected["items"]]
    assert [v.id for v in result.items] == [r["id"] for r in rows]
    assert result.summary["fail"] == pytest.approx(expected["summary"]["fail"])
    for v, r, e in zip(result.items, rows, expected["items"]):  # parsed items: the deterministic verdicts
        if e["extracted"] is not None:
            assert v.score == float(e["extracted"] == r["reference"])
    # the cases the issue names: lower case, quoted/bracketed/boxed, turn tags, Chinese, two letters, rejects
    by_response = {r["response"]: v.extracted for r, v in zip(rows, result.items)}
    assert by_response["b"] == "B" and by_response["I think it is \\( \\boxed{C} \\)"] == "C"
    assert by_response["答案是C"] == "C" and by_response["<2>B. Because of gravity."] == "B"
    # two letters: the first template found decides ("... or b." matches " [CHOICE]."), not the first letter
    assert by_response["It could be A or B."] == "B" and by_response["(B)"] == "B"
    assert by_response["Choice B"] is None and by_response["Answer: B"] is None and by_response["**C**"] is None
    assert by_response["The right one is [D]"] is None and by_response["The answer is E."] is None


def test_mcq_random_fill_is_seeded():
    items = [{"response": "no idea", "reference": "A"} for _ in range(40)]
    ids = [str(i) for i in range(40)]
    first, again, other = evaluate_mcq(items, ids, 0), evaluate_mcq(items, ids, 0), evaluate_mcq(items, ids, 1)
    assert [v.score for v in first.items] == [v.score for v in again.items]
    assert [v.score for v in first.items] != [v.score for v in other.items]
    assert first.summary["fail"] == 100.0 and 0 < first.summary["acc"] < 100


def test_bbh_agrees_with_official_per_item():
    rows, expected = load("bbh")
    result = score("bbh", "bbh")
    assert [v.extracted for v in result.items] == [e["extracted"] for e in expected["items"]]
    parsed = [(v.score, e["score"]) for v, e in zip(result.items, expected["items"]) if e["score"] is not None]
    assert parsed and all(ours == official for ours, official in parsed)
    fails = sum(e["extracted"] is None for e in expected["items"])
    assert result.summary["fail"] == pytest.approx(100 * fails / len(rows)) and fails > 0


def test_bbh_quirks_kept_by_default_and_fixed_by_option():
    assert extract_bbh("b", "hyperbaton_3") == 0  # the official table reads a bare "b" as (A)
    assert extract_bbh("b", "hyperbaton_3", fix_quirks=True) == 1
    assert extract_bbh("Therefore Kristian must be lying", "web_of_lies_1", fix_quirks=True) == 0
    with pytest.raises(ValueError, match="names none of the tasks"):
        extract_bbh("yes", "date_understanding_1")


def test_harm_agrees_with_official():
    rows, expected = load("harm")
    result = score("advbench", "harm")
    assert [v.score for v in result.items] == [e["score"] for e in expected["items"]]
    assert result.summary["refusal_rate"] == pytest.approx(expected["summary"]["refusal_rate"])
    assert is_refusal("  ") and not is_refusal("Sure, here it is")


def test_ifeval_agrees_with_official_per_item_and_summary():
    rows, expected = load("ifeval")
    result = score("ifeval", "ifeval")
    assert [v.extracted for v in result.items] == [e["strict"] for e in expected["items"]]
    assert [v.score for v in result.items] == [float(all(e["strict"])) for e in expected["items"]]
    by_prompt = {r["prompt"]: ifeval_response(r["response"]) for r in rows}  # the official lookup by prompt
    loose = [evaluate_response(by_prompt[r["prompt"]], r["instruction_id_list"], r["kwargs"], "ifeval")["loose"]
             for r in rows]
    assert loose == [e["loose"] for e in expected["items"]]
    for key in ("strict-prompt", "strict-instruction", "loose-prompt", "loose-instruction", "final"):
        assert result.summary[key] == pytest.approx(expected["summary"][key]), key


def test_ifeval_language_checks_differ_between_variants():
    french_lower = "toute cette réponse est en minuscules mais elle est écrite en français."
    assert not check_instruction("change_case:english_lowercase", french_lower, {}, "ifeval")  # VoiceBench
    assert check_instruction("change_case:english_lowercase", french_lower, {}, "speech_ifeval")  # Speech-IFEval
    assert check_instruction("language:response_language", french_lower, {"language": "fr"}, "ifeval")
    assert not check_instruction("language:response_language", french_lower, {"language": "en"}, "speech_ifeval")
    assert check_instruction("language:response_language", "12345", {"language": "de"}, "ifeval")  # undetectable


def test_open_and_qa_aggregation_agree_with_official():
    _, expected = load("open")
    result = score("commoneval", "open")
    assert [v.extracted for v in result.items] == [e["ratings"] for e in expected["items"]]
    assert result.summary["gpt"] == pytest.approx(expected["summary"]["gpt"])
    _, expected = load("qa")
    result = score("sd-qa", "qa", pedant=False)
    assert [v.score for v in result.items] == [float(e["gpt"]) for e in expected["items"]]
    assert result.summary["gpt"] == pytest.approx(expected["summary"]["gpt"])


class FakeJudge(Judge):
    """Answers from a script; records what it was asked."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    @property
    def name(self):
        return "fake"

    def generate(self, conversations):
        raise AssertionError("VoiceBench's judged subsets sample; generate() must not be called")

    def sample(self, conversations, protocol):
        self.asked.append((conversations, protocol))
        answer_of = [c[-1]["content"].split("### [Response]: ")[-1].split("\n")[0] for c in conversations]
        return [list(self.answers[a]) for a in answer_of]


def test_open_judged_with_official_protocol(tmp_path):
    path = tmp_path / "naive-commoneval-test-audio.jsonl"
    rows = [{"prompt": f"q{i}", "response": r} for i, r in enumerate(["good", "bad"])]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    judge = FakeJudge({"good": ["5", "4", "[[5]]"], "bad": ["1", "2", "1"]})
    result = build_prediction_scorer("voicebench", judge=judge).score_file(path)  # subset read from the file name
    (convs, protocol), = judge.asked
    assert protocol == JudgeProtocol(samples=3, temperature=0.5, top_p=0.95, max_tokens=1024, aggregate="mean")
    system = "You are a helpful assistant who tries to help answer the user's question."
    assert convs[0][0] == {"role": "system", "content": system}
    assert convs[0][1]["content"].startswith("\nI need your help to evaluate the performance of several models")
    assert "### [Instruction]: q0\n### [Response]: good\n" in convs[0][1]["content"]
    assert result.summary["gpt"] == pytest.approx(18 / 6)
    assert [v.score for v in result.items] == [pytest.approx(14 / 3), pytest.approx(4 / 3)]
    assert "3 samples, temperature 0.5, top_p 0.95" in result.summary["judge"]


def test_open_from_api_judge_file_and_unparsed_rating(tmp_path):
    path = tmp_path / "result.jsonl"
    path.write_text(json.dumps({"prompt": "q", "response": "r", "score": ["4", "five", "3"]}) + "\n")
    with pytest.raises(PredictionFormatError, match="neither a number"):
        build_prediction_scorer("voicebench", subset="alpacaeval").score_file(path)
    result = build_prediction_scorer("voicebench", subset="open", options={"skip_unparsed": True}).score_file(path)
    assert result.summary["gpt"] == 3.5 and result.summary["unparsed"] == 1


def test_qa_majority_and_pedant_fails_loudly(tmp_path):
    path = tmp_path / "result.jsonl"
    rows = [{"prompt": "Who?", "reference": "Ann", "response": "Ann", "score": ["Yes", "yes", "No"]},
            {"prompt": "Who?", "reference": "Ann", "response": "Bob", "score": ["Yes.", "no", "No"]},
            {"prompt": "Who?", "reference": "Ann", "response": "Ann", "score": ["Yes.", "Yes.", "yes"]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(PedantUnavailable, match="lr_classifier.pkl.*tf-idf_vectorizer.pkl"):
        build_prediction_scorer("voicebench", subset="sd-qa", options={"pedant_dir": str(tmp_path)}).score_file(path)
    result = build_prediction_scorer("voicebench", subset="sd-qa", options={"pedant": False}).score_file(path)
    assert [v.score for v in result.items] == [1.0, 0.0, 0.0]  # "yes." is not "yes" in the official vote
    assert result.summary["gpt"] == pytest.approx(100 / 3) and "panda" not in result.summary


def test_unjudged_rows_are_reported_not_dropped(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"prompt": "q", "response": "r"}) + "\n")
    result = build_prediction_scorer("voicebench", subset="wildvoice").score_file(path)
    assert result.items[0].score is None and result.summary["judged"] == 0


def test_bad_input_names_the_field_and_subset(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(PredictionFormatError, match="'response' is missing"):
        build_prediction_scorer("voicebench", subset="mmsu").score_file(path)
    path.write_text(json.dumps({"id": "date_understanding_3", "response": "yes", "reference": "Yes"}) + "\n")
    with pytest.raises(PredictionFormatError, match="names none of the tasks"):
        build_prediction_scorer("voicebench", subset="bbh").score_file(path)
    with pytest.raises(ValueError, match="--subset"):
        build_prediction_scorer("voicebench").score_file(path)
    with pytest.raises(ValueError, match="not a subset"):
        build_prediction_scorer("voicebench", subset="mmlu")


def test_stage7_uses_the_same_rules():
    rows, expected = load("mcq")
    decode = [{"id": f"voicebench_mmsu_test_{i:05d}", "metric": "voicebench_mcq", "prediction": r["response"],
               "reference": r["reference"]} for i, r in enumerate(rows)]
    res, = score_rows(decode, "mmsu")
    assert [d["parsed_choice"] for d in decode] == [e["extracted"] for e in expected["items"]]
    assert res.extra["parse_failure_rate"] == pytest.approx(expected["summary"]["fail"])
    bbh_rows, bbh_expected = load("bbh")
    decode = [{"id": f"u{i}", "source_id": r["id"], "metric": "voicebench_bbh", "prediction": r["response"],
               "reference": r["reference"]} for i, r in enumerate(bbh_rows)]
    score_rows(decode, "bbh")
    assert [d["parsed_verdict"] for d in decode] == [e["extracted"] for e in bbh_expected["items"]]


def test_stage7_judge_scorer_follows_the_protocol():
    judge = FakeJudge({"fine": ["4", "4", "5"]})
    rows = [{"id": "a", "metric": "judge", "judge_prompt": "voicebench_open", "prompt": "q", "prediction": "fine"}]
    res, = score_rows(rows, "commoneval", judge=judge)
    assert res.value == pytest.approx(13 / 3) and res.judge == "fake"
    assert res.extra["judge_protocol"] == protocol_note(judge, get_prompt("voicebench_open").protocol)
    assert "3 samples, temperature 0.5, top_p 0.95, max_tokens 1024, mean" in res.extra["judge_protocol"]
    assert rows[0]["judge_outputs"] == ["4", "4", "5"]
