"""Prediction files in a benchmark's own format, scored by its official rules (toolkit.score.predictions).

The MMAU and MMAR fixtures hold invented predictions whose expected verdicts and printout come from
running the official scorers (see each fixture's README.md); the tests compare item by item.
"""

import json
import os
import re
from pathlib import Path

import pytest

from toolkit.bin import score_predictions
from toolkit.config import ConfigError
from toolkit.registry import RegistryError
from toolkit.score.base import score_rows
from toolkit.score.predictions import (
    PREDICTION_SCORERS,
    ItemVerdict,
    PredictionFormatError,
    PredictionScorer,
    build_prediction_scorer,
)

FIXTURES = Path(__file__).parent / "fixtures" / "official"
CASES = {"mmau": "predictions.json", "mmar": "predictions.jsonl"}


def official_printout(benchmark: str) -> list[str]:
    return (FIXTURES / benchmark / "expected_stdout.txt").read_text().splitlines()


def printed_figures(lines: list[str]) -> dict[str, tuple[float, int]]:
    """``{name: (accuracy, count)}`` parsed from an official printout."""
    out = {}
    for line in lines:
        m = re.fullmatch(r"(.+) : ([\d.]+)% over (\d+) samples", line)
        if m:
            out[m.group(1)] = (float(m.group(2)), int(m.group(3)))
        m = re.fullmatch(r"Total Accuracy: ([\d.]+)% over (\d+) samples", line)
        if m:
            out["total"] = (float(m.group(1)), int(m.group(2)))
    return out


@pytest.mark.parametrize("benchmark", sorted(CASES))
def test_fixture_agrees_with_official_per_item(benchmark):
    result = build_prediction_scorer(benchmark).score_file(FIXTURES / benchmark / CASES[benchmark])
    expected = json.loads((FIXTURES / benchmark / "expected_per_item.json").read_text())
    scored = {v.id: v.score for v in result.items if v.score is not None}
    assert scored == {k: float(v) for k, v in expected.items()}
    skipped = [v for v in result.items if v.score is None]
    assert skipped and all(v.extracted is None and "skipped" in v.reason for v in skipped)
    assert result.summary["skipped"] == len(skipped)
    assert len(result.items) == len(expected) + len(skipped)


@pytest.mark.parametrize("benchmark", sorted(CASES))
def test_fixture_printout_and_summary_match_official(benchmark):
    result = build_prediction_scorer(benchmark).score_file(FIXTURES / benchmark / CASES[benchmark])
    official = official_printout(benchmark)
    assert result.lines[: len(official)] == official
    assert [line.startswith("(toolkit note)") for line in result.lines[len(official):]] == [True]
    figures = printed_figures(official)
    assert result.summary["total"] == figures["total"][0] and result.summary["count"] == figures["total"][1]
    for name, (acc, n) in figures.items():
        key = name if name == "total" or name in result.summary else f"sub-category:{name}"
        assert result.summary[key] == (acc if n else None), name


def test_desta25_published_mmau_test_mini():
    """DeSTA2.5-Audio's published test-mini predictions (kehanlu/DeSTA2.5-Audio,
    examples/evaluation/MMAU-v05.15.25/results/mmau-test-mini_results.json) give its published numbers."""
    path = os.environ.get("DESTA_MMAU_RESULTS")
    if not path or not Path(path).is_file():
        pytest.skip("set DESTA_MMAU_RESULTS to DeSTA2.5-Audio's mmau-test-mini_results.json to run this check")
    result = build_prediction_scorer("mmau").score_file(Path(path))
    s = result.summary
    assert (s["total"], s["speech"], s["sound"], s["music"], s["count"]) == (66.00, 71.17, 70.57, 56.29, 1000)
    assert "Total Accuracy: 66.00% over 1000 samples" in result.lines


def test_stage7_mmau_scorer_gives_the_same_verdicts():
    """Stage 7's ``mmau`` scorer and the prediction scorer share one rule: same verdict on every item."""
    items = json.loads((FIXTURES / "mmau" / "predictions.json").read_text())
    expected = json.loads((FIXTURES / "mmau" / "expected_per_item.json").read_text())
    rows = [{"id": it["id"], "metric": "mmau", "prediction": it["model_prediction"], "reference": it["answer"],
             "choices": it["choices"], "task": it["task"]} for it in items if "model_prediction" in it]
    score_rows(rows, "fixture")
    assert {r["id"]: r["score"] for r in rows} == expected


def test_registry_has_the_contract():
    assert {"mmau", "mmar"} <= set(PREDICTION_SCORERS.choices())
    for name in PREDICTION_SCORERS.choices():
        cls = PREDICTION_SCORERS.get(name)
        assert issubclass(cls, PredictionScorer) and re.match(r"[\w.-]+/[\w.-]+@[0-9a-f]{7,40} \S", cls.official), name
    verdict = ItemVerdict("a", None, float("nan"), "r").to_dict()
    assert verdict == {"id": "a", "extracted": None, "score": None, "reason": "r"}


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


ITEM = {"id": "q1", "choices": ["Man", "Woman"], "answer": "Man", "task": "speech", "difficulty": "easy"}


def test_format_errors_name_the_field(tmp_path):
    scorer = build_prediction_scorer("mmau")
    with pytest.raises(PredictionFormatError, match="field 'model_prediction'.*missing.*JSON list"):
        scorer.score_file(write(tmp_path, "a.json", [ITEM]))
    with pytest.raises(PredictionFormatError, match="holds a JSON dict, not a list"):
        scorer.score_file(write(tmp_path, "b.json", {"x": 1}))
    with pytest.raises(PredictionFormatError, match="item 0: field 'difficulty' is missing"):
        no_difficulty = {k: v for k, v in ITEM.items() if k != "difficulty"}
        scorer.score_file(write(tmp_path, "c.json", [{**no_difficulty, "model_prediction": "x"}]))
    with pytest.raises(PredictionFormatError, match="'model_prediction' is NoneType, not text"):
        scorer.score_file(write(tmp_path, "d.json", [{**ITEM, "model_prediction": None}]))
    with pytest.raises(PredictionFormatError, match="field 'task' is 'vision', not one of sound, music, speech"):
        scorer.score_file(write(tmp_path, "e.json", [{**ITEM, "task": "vision", "model_prediction": "Man"}]))
    with pytest.raises(PredictionFormatError, match="prediction file not found"):
        scorer.score_file(tmp_path / "missing.json")
    with pytest.raises(PredictionFormatError, match="unknown option.*foo.*prediction_key"):
        build_prediction_scorer("mmau", options={"foo": 1})
    with pytest.raises(RegistryError, match="unknown benchmark 'nope'.*mmar, mmau"):
        build_prediction_scorer("nope")


def test_prediction_key_options(tmp_path):
    row = {**ITEM, "modality": "speech", "category": "Semantic Layer",
           "model_prediction": "Woman", "model_output": "Man"}
    mmau = write(tmp_path, "p.json", [row])
    assert build_prediction_scorer("mmau").score_file(mmau).items[0].score == 0.0
    by_output = build_prediction_scorer("mmau", options={"prediction_key": "model_output"})
    assert by_output.score_file(mmau).items[0].score == 1.0
    # MMAR: answer_prediction (the script now) first, model_prediction (its first version) when none has it
    mmar = tmp_path / "p.jsonl"
    mmar.write_text(json.dumps(row) + "\n")
    result = build_prediction_scorer("mmar").score_file(mmar)
    assert result.summary["prediction_key"] == "model_prediction" and result.items[0].score == 0.0
    mmar.write_text(json.dumps({**row, "answer_prediction": "Man"}) + "\n")
    assert build_prediction_scorer("mmar").score_file(mmar).items[0].score == 1.0
    with pytest.raises(PredictionFormatError, match=r"only files named \*.json or \*.jsonl"):
        build_prediction_scorer("mmar").score_file(write(tmp_path, "p.txt", [row]))


def test_cli_writes_outputs_and_prints_official_lines(tmp_path, capsys):
    out = tmp_path / "scored"
    assert score_predictions.main(["--benchmark", "mmar", "--predictions", str(FIXTURES / "mmar" / CASES["mmar"]),
                                   "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[: len(official_printout("mmar"))] == official_printout("mmar")
    rows = [json.loads(line) for line in (out / "per_item.jsonl").read_text().splitlines()]
    assert len(rows) == 33 and set(rows[0]) == {"id", "extracted", "score", "reason"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"] == printed_figures(printed)["total"][0] and summary["mix-sound-music"] is not None


def test_cli_judge_and_options_are_key_value():
    assert score_predictions.parse_pairs(["name=openai", "top_p=0.95", "max_tokens=8", "x=[a, b]"], "--judge") == \
        {"name": "openai", "top_p": 0.95, "max_tokens": 8, "x": ["a", "b"]}
    with pytest.raises(ConfigError, match="expected key=value"):
        score_predictions.parse_pairs(["oops"], "--judge")
    with pytest.raises(ConfigError, match="name=hf|vllm|openai is required"):
        score_predictions.main(["--benchmark", "mmau", "--predictions", "x.json", "--judge", "model=gpt"])


def test_mmar_stage7_loader_and_breakdown(tmp_path):
    """MMAR in stage 7: the manifest loader gives mmau-rule rows broken down by modality and category."""
    from toolkit.score.benchmarks import build_benchmark

    rows = [json.loads(line) for line in (FIXTURES / "mmar" / CASES["mmar"]).read_text().splitlines()]
    (tmp_path / "audio").mkdir()
    for r in rows:
        (tmp_path / r["audio_path"]).write_bytes(b"RIFF")
    meta = tmp_path / "MMAR-meta.jsonl"
    meta.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "answer_prediction"}) + "\n" for r in rows))
    manifest = list(build_benchmark({"name": "mmar", "meta_path": str(meta), "audio_root": str(tmp_path)}).rows())
    assert len(manifest) == len(rows) and {m["metric"] for m in manifest} == {"mmau"}
    decoded = [{**m, "prediction": r["answer_prediction"]} for m, r in zip(manifest, rows) if "answer_prediction" in r]
    results = {(res.set, res.metric): res for res in score_rows(decoded, "mmar")}
    figures = printed_figures(official_printout("mmar"))
    assert round(results[("mmar", "mmau")].value, 2) == figures["total"][0]
    assert round(results[("mmar[modality=sound]", "mmau")].value, 2) == figures["sound"][0]
    assert round(results[("mmar[category=Cultural Layer]", "mmau")].value, 2) == figures["Cultural Layer"][0]
    with pytest.raises(Exception, match="lacks answer"):
        meta.write_text(json.dumps({k: v for k, v in rows[0].items() if k != "answer"}) + "\n")
        list(build_benchmark({"name": "mmar", "meta_path": str(meta), "audio_root": str(tmp_path)}).rows())


def test_dynamic_superb_dispatch_and_shared_wer(tmp_path):
    from toolkit.score.dynamic_superb import task_metric, task_metrics

    assert len(task_metrics()) == 231
    assert task_metric("SuperbASR_LibriSpeech-TestClean") == "word_error_rate"
    assert task_metric("SuperbOODAsrZh_CommonVoice7-Test") == "character_error_rate"
    assert task_metric("SuperbST_CoVoST2-Test") == "sacre_bleu"
    assert task_metric("SuperbER_RAVDESS") == "llm_classification"
    rows = [{"example_id": "u1", "instruction": "Transcribe.", "label": "Hello world.", "prediction": "hello word"},
            {"example_id": "u2", "instruction": "Transcribe.", "label": "good day to you", "prediction": "Good day!"},
            {"example_id": "u3", "instruction": "Transcribe.", "label": "...", "prediction": "noise"}]
    path = tmp_path / "SuperbASR_LibriSpeech-TestClean.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = build_prediction_scorer("dynamic_superb").score_file(path)
    stage7 = [{"id": r["example_id"], "metric": "wer", "prediction": r["prediction"], "reference": r["label"]}
              for r in rows]
    (wer,) = score_rows(stage7, "asr", {"wer": {"normalizer": "basic"}})
    assert result.summary["metric"] == "word_error_rate"
    assert result.summary["word_error_rate"] == pytest.approx(wer.value)
    assert [v.score for v in result.items] == [r["score"] for r in stage7]
    assert result.items[2].score is None and "empty reference" in result.items[2].reason
    assert result.summary["verified_against_official"] is False and "not verified" in result.lines[0]

    judged = tmp_path / "SuperbER_RAVDESS.jsonl"
    judged.write_text(path.read_text())
    result = build_prediction_scorer("dynamic_superb").score_file(judged)
    assert all(v.score is None and "llm_classification" in v.reason for v in result.items)
    assert result.summary["unscored"] == 3 and result.summary["llm_classification"] is None
    with pytest.raises(PredictionFormatError, match="did you mean SuperbASR_LibriSpeech-TestClean"):
        build_prediction_scorer("dynamic_superb", subset="SuperbASR_LibriSpeech-Testclean").score_file(path)
    with pytest.raises(PredictionFormatError, match="field 'prediction' is missing"):
        build_prediction_scorer("dynamic_superb", options={"prediction_key": "prediction"}).score_file(
            write(tmp_path, "SuperbIC_SLURP.jsonl", {"label": "x"}))


def test_dynamic_superb_stage7_auto_metric(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from toolkit.score.benchmarks import build_benchmark

    for task, metric in (("SuperbASR_LibriSpeech-TestClean", "wer"), ("SuperbER_RAVDESS", "label_accuracy")):
        (tmp_path / task / "data").mkdir(parents=True)
        table = pa.table({"file": ["a.wav"], "audio": [{"bytes": b"RIFF0000WAVE", "path": "a.wav"}],
                          "instruction": ["Do it."], "label": ["yes"]})
        pq.write_table(table, tmp_path / task / "data" / "test-00000-of-00001.parquet")
        loader = build_benchmark({"name": "dynamic_superb", "root": str(tmp_path / task),
                                  "audio_dir": str(tmp_path / "wav"), "metric": "auto"})
        (row,) = loader.rows()
        assert row["metric"] == metric and row["phase2_metric"] in ("word_error_rate", "llm_classification")
