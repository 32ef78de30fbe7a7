"""The recipe scripts: every run.sh is executable and answers --help; the eval recipe runs end to end."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_SCRIPTS = sorted(p for p in (ROOT / "egs").glob("*/*/run.sh"))
NEW_RECIPES = [p.parent for p in RUN_SCRIPTS if p.parts[-3] != "mini"]


@pytest.mark.parametrize("run", RUN_SCRIPTS, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_run_sh_is_executable_and_answers_help(run):
    assert os.access(run, os.X_OK), f"{run}: chmod +x"
    subprocess.run(["bash", "-n", str(run)], check=True)
    out = subprocess.run([str(run), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "--stage" in out.stdout


@pytest.mark.parametrize("recipe", NEW_RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_states_data_location_and_launch(recipe):
    text = (recipe / "README.md").read_text()
    corpus = recipe.parts[-2]
    assert "./run.sh" in text and "## " in text
    if corpus not in ("aqa5m", "eval"):
        assert f"downloads/{corpus}" in text and "source_dir" in text
        assert "llm=llama3_1_8b_instruct encoder=whisper_large_v3 adapter=qformer" in text  # the one-override swap
    else:
        assert "downloads/" in text


def write_mmau(root):
    import io

    import numpy as np
    import soundfile as sf

    (root / "test-mini-audios").mkdir(parents=True)
    items = []
    for i, answer in (("q1", "Man"), ("q2", "Woman")):
        buf = io.BytesIO()
        sf.write(buf, np.zeros(8000, dtype="float32"), 16000, format="WAV")
        (root / "test-mini-audios" / f"{i}.wav").write_bytes(buf.getvalue())
        items.append({"id": i, "audio_id": f"./test-mini-audios/{i}.wav", "question": "Who speaks?",
                      "choices": ["Man", "Woman"], "answer": answer, "task": "speech", "difficulty": "easy"})
    (root / "mmau-test-mini.json").write_text(json.dumps(items))


def test_eval_recipe_end_to_end(tmp_path, tiny_model_config):
    """egs/eval/desta25/run.sh --config conf/mmau.yaml: prepare (1), decode (6), score (7) with a tiny export.

    The recipe and the stage script are copied into tmp_path with the repo's relative layout, so the run
    writes nothing into the checkout.
    """
    from toolkit.models.lalm import LALM

    model_dir = tmp_path / "export"
    LALM.from_config(tiny_model_config).save_pretrained(model_dir)
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "egs" / "eval" / "desta25", repo / "egs" / "eval" / "desta25",
                    ignore=shutil.ignore_patterns("exp", "data", "downloads"))
    shutil.copytree(ROOT / "recipes", repo / "recipes")
    recipe = repo / "egs" / "eval" / "desta25"
    write_mmau(recipe / "downloads" / "MMAU")
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run([str(recipe / "run.sh"), "--config", "conf/mmau.yaml", "--", f"model_dir={model_dir}",
                          "decode.batch_size=2", "decode.generation.max_new_tokens=4"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (recipe / "data" / "mmau_test_mini" / ".done").is_file()
    decoded = [json.loads(x) for x in (recipe / "exp" / "mmau" / "decode" / "mmau_test_mini" / "decode.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in decoded) == ["mmau_q1", "mmau_q2"] and all("prediction" in r for r in decoded)
    results = (recipe / "exp" / "mmau" / "RESULTS.md").read_text()
    assert "mmau_test_mini" in results
    # a rerun with the same settings skips every finished stage (stage 6 checks its shard markers: no model loads)
    again = subprocess.run([str(recipe / "run.sh"), "--config", "conf/mmau.yaml", "--", f"model_dir={model_dir}",
                            "decode.batch_size=2", "decode.generation.max_new_tokens=4"],
                           capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and again.stdout.count("already done") == 3, again.stdout[-3000:]  # stages 1, 6, 7
    assert "Decoding shard" not in again.stdout
    assert not (recipe / "exp" / "mmau" / "markers").exists()  # the recipe keeps no marker of its own
    # deleting the scoring stage's marker (the one the "already done" line names) redoes exactly that stage
    done = recipe / "exp" / "mmau" / "score.done"
    assert str(done.relative_to(recipe)) in again.stdout
    (recipe / "exp" / "mmau" / "RESULTS.md").unlink()
    done.unlink()
    third = subprocess.run([str(recipe / "run.sh"), "--config", "conf/mmau.yaml", "--", f"model_dir={model_dir}",
                            "decode.batch_size=2", "decode.generation.max_new_tokens=4"],
                           capture_output=True, text=True, timeout=120, env=env)
    assert third.returncode == 0 and third.stdout.count("already done") == 2, third.stdout[-3000:]  # stages 1, 6
    assert done.is_file() and "mmau_test_mini" in (recipe / "exp" / "mmau" / "RESULTS.md").read_text()
