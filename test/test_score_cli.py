"""Stage 7 CLI (toolkit.bin.score) and the ablation table (toolkit.bin.gather_results)."""

import json
import subprocess
import sys

import pytest

from toolkit.bin import gather_results, score
from toolkit.config import ConfigError


def write_decode(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def decode_rows(correct: bool):
    choices = ["Man", "Woman"]
    return [
        {"id": "m1", "dataset": "MMAU", "prompt": "q", "prediction": "Man" if correct else "Woman", "reference": "Man",
         "transcript": " ", "metric": "mmau", "choices": choices, "task": "speech"},
        {"id": "m2", "dataset": "MMAU", "prompt": "q", "prediction": "Woman", "reference": "Woman",
         "transcript": " ", "metric": "mmau", "choices": choices, "task": "sound"},
    ]


def run_score(tmp_path, tag, correct):
    exp = tmp_path / "exp" / tag
    write_decode(exp / "decode" / "mmau_mini" / "decode.jsonl", decode_rows(correct))
    write_decode(exp / "decode" / "asr.jsonl", [{"id": "a1", "dataset": "libri", "prompt": "p", "prediction": "hello word",
                                                  "reference": "Hello world.", "metric": "wer", "choices": None}])
    cfg = tmp_path / f"{tag}.yaml"
    cfg.write_text(
        "score:\n"
        f"  out_dir: {exp}\n"
        f"  inputs: [{exp / 'decode' / 'mmau_mini'}, {exp / 'decode' / 'asr.jsonl'}]\n"
        "  scorers: {mmau: {strip_prefixes: ['The correct answer is: ']}}\n"
    )
    assert score.main(["--config", str(cfg)]) == 0
    return exp


def test_score_cli_writes_results_config_and_marker(tmp_path, capsys):
    exp = run_score(tmp_path, "good", True)
    results = json.loads((exp / "results.json").read_text())
    table = {(r["set"], r["metric"]): r for r in results["results"]}
    assert results["tag"] == "good"
    assert table[("mmau_mini", "mmau")]["value"] == 100.0
    assert table[("mmau_mini[task=speech]", "mmau")]["count"] == 1
    assert table[("asr", "wer")]["value"] == 50.0
    md = (exp / "RESULTS.md").read_text()
    assert "## mmau_mini" in md and "| mmau_mini | mmau | 100.00 | 2 | - |" in md and "## asr" in md
    assert (exp / "score_config.yaml").is_file() and (exp / "score.done").is_file()
    assert json.loads((exp / "details" / "mmau_mini.jsonl").read_text().splitlines()[0])["score"] == 1
    # done marker: a second run skips; --force, or deleting the marker, scores again
    (exp / "results.json").unlink()
    assert score.main(["--config", str(tmp_path / "good.yaml")]) == 0
    assert not (exp / "results.json").exists()
    assert score.main(["--config", str(tmp_path / "good.yaml"), "--force"]) == 0
    assert (exp / "results.json").exists() and (exp / "score.done").is_file()
    (exp / "results.json").unlink()
    (exp / "score.done").unlink()
    assert score.main(["--config", str(tmp_path / "good.yaml")]) == 0
    assert (exp / "results.json").exists() and (exp / "score.done").is_file()


def test_score_cli_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"score:\n  out_dir: {tmp_path / 'o'}\n  inputs: [{tmp_path / 'missing.jsonl'}]\n")
    with pytest.raises(ConfigError, match="does not exist"):
        score.main(["--config", str(cfg)])
    cfg.write_text(f"score:\n  out_dir: {tmp_path / 'o'}\n  inputs: []\n  scorer: {{}}\n")
    with pytest.raises(ConfigError, match="score.scorer: unknown key"):
        score.main(["--config", str(cfg)])


def test_gather_results_table_csv_png(tmp_path):
    good = run_score(tmp_path, "good", True)
    bad = run_score(tmp_path, "bad", False)
    out = tmp_path / "compare"
    assert gather_results.main([str(good), str(bad), "--out", str(out)]) == 0
    md = (out / "comparison.md").read_text()
    assert "| mmau_mini | mmau | - | 100.00 | 50.00 |" in md
    assert "task=" not in md  # breakdown rows only with --breakdown
    csv_lines = (out / "comparison.csv").read_text().splitlines()
    assert csv_lines[0] == "set,metric,judge,good,bad" and len(csv_lines) == 3
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert gather_results.main([str(good), "--out", str(out), "--metrics", "nope"]) == 1


def test_score_cli_imports_no_torch():
    code = "import sys, toolkit.bin.score, toolkit.bin.gather_results; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_misspelled_scorer_name_is_refused(tmp_path):
    from toolkit.bin.score import main
    from toolkit.config import ConfigError

    decode = tmp_path / "decode.jsonl"
    decode.write_text('{"id": "a", "prediction": "x", "reference": "x", "metric": "wer"}\n')
    config = tmp_path / "c.yaml"
    config.write_text(f"score:\n  out_dir: {tmp_path / 'out'}\n  inputs: [{decode}]\n  scorers: {{wre: {{}}}}\n")
    with pytest.raises(ConfigError, match="score.scorers.wre"):
        main(["--config", str(config)])


def test_gather_results_controls_table_puts_the_backbone_beside_each_variant(tmp_path):
    import json

    dirs = []
    for name, trained in (("selfgen", 60.0), ("labels", 20.0)):
        d = run_score(tmp_path, name, True)
        entry = {"set": "test", "task": "instruction_following", "trained": {"value": trained, "n": 10},
                 "oracle": {"value": 70.0, "n": 10}}
        (d / "controls.json").write_text(json.dumps([entry]))
        dirs.append(str(d))
    out = tmp_path / "compare"
    assert gather_results.main([*dirs, "--out", str(out)]) == 0
    md = (out / "controls.md").read_text()
    assert "| set | task | selfgen | labels | backbone + description |" in md
    assert "| test | instruction_following | 60.00 | 20.00 | 70.00 |" in md
    assert (out / "controls.png").read_bytes()[:4] == b"\x89PNG"
