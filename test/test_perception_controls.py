"""Closed-set scoring, the perception controls of stage 7, weighted instruction draws and attribute shares."""

from __future__ import annotations

import json
import math

import pytest

from toolkit.score.controls import best_constant, control_table, render_controls, wilson_interval
from toolkit.score.scorers.closed_set import ClosedSetScorer, closed_set_verdict, options_named
from toolkit.selfgen.instructions import InstructionPool
from toolkit.selfgen.runner import attribute_mentions


def test_an_answer_must_name_exactly_one_option():
    options = ["violin", "flute", "piano", "cello"]
    assert closed_set_verdict("The instrument playing is a violin.", options, "violin") == ("violin", True)
    assert closed_set_verdict("It sounds like a Flute!", options, "flute") == ("flute", True)
    assert closed_set_verdict("A violin or a cello.", options, "violin") == (None, False)  # a hedge is wrong
    assert closed_set_verdict("I cannot tell.", options, "violin") == (None, False)
    # whole words: "female" does not name "male"
    assert options_named("The speaker is female.", ["Female", "Male"]) == ["Female"]
    assert options_named("A male voice.", ["Female", "Male"]) == ["Male"]


def test_closed_set_scorer_reports_unparsed_share():
    rows = [{"id": str(i), "metric": "closed_set", "choices": ["Female", "Male"], "reference": ref, "prediction": pred}
            for i, (ref, pred) in enumerate([("Female", "female"), ("Male", "female"), ("Male", "male or female"),
                                              ("Male", "It is a male speaker.")])]
    [res] = ClosedSetScorer().score(rows)
    assert res.value == 50.0 and res.count == 4 and res.extra["no_single_option_rate"] == 25.0
    assert [r["extracted"] for r in rows] == ["Female", "Female", None, "Male"]


def test_wilson_interval_matches_the_formula():
    low, high = wilson_interval(4, 21)  # the 4/21: 95 % interval about [8 %, 40 %]
    assert 7.0 < low < 9.0 and 39.0 < high < 42.0
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 100.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_best_constant_is_the_most_frequent_label():
    rows = [{"reference": r} for r in ["piano", "piano", "flute", "organ"]]
    best = best_constant(rows)
    assert best["answer"] == "piano" and best["value"] == 50.0 and best["n"] == 4


def _rows(task, pairs):
    return [{"id": f"{task}{i}", "utt_id": f"u{i}", "task": task, "metric": "closed_set", "choices": ["Female", "Male"],
             "reference": ref, "prediction": pred} for i, (ref, pred) in enumerate(pairs)]


def test_control_table_gain_and_oracle_share(tmp_path):
    refs = ["Female", "Male"] * 5
    trained = _rows("gender", [(r, r) for r in refs[:8]] + [(r, "none") for r in refs[8:]])  # 8/10
    silence = _rows("gender", [(r, "female") for r in refs])  # 5/10
    oracle = _rows("gender", [(r, r) for r in refs])  # 10/10
    files = {}
    for name, rows in (("silence", silence), ("oracle", oracle)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[name] = {"test": path}
    [entry] = control_table({"test": trained}, files, ["silence", "constant", "oracle"], ["closed_set"])
    assert entry["trained"]["value"] == 80.0 and entry["silence"]["value"] == 50.0
    assert entry["constant"]["value"] == 50.0 and entry["best_control"] == 50.0
    assert entry["perception_gain"] == pytest.approx(30.0) and entry["share_of_oracle_gain"] == pytest.approx(60.0)
    assert entry["prompt_fit"] is True
    md = render_controls([entry])
    assert "| test | gender | 10 | 80.0 [" in md and "+30.0" in md and "60 %" in md


def test_instruction_following_rows_get_the_backbone_rate_and_no_constant(tmp_path):
    def rows(answers):
        return [{"id": f"u{i}#instruction_following", "task": "instruction_following", "metric": "ifeval",
                 "reference": "", "prediction": a, "instruction_id_list": ["change_case:english_lowercase"],
                 "kwargs": [{}]} for i, a in enumerate(answers)]

    trained = rows(["a dog barks", "A Dog", "a cat", "A CAT"])  # 2/4 lowercase
    oracle = tmp_path / "oracle.jsonl"
    oracle.write_text("".join(json.dumps(r) + "\n" for r in rows(["a", "b", "c", "D"])))  # 3/4
    [entry] = control_table({"test": trained}, {"oracle": {"test": oracle}}, ["constant", "oracle"], ["ifeval"])
    assert entry["metric"] == "ifeval" and "constant" not in entry and "perception_gain" not in entry
    assert entry["trained"]["value"] == 50.0 and entry["oracle"]["value"] == 75.0
    md = render_controls([entry])
    assert "| test | instruction_following | 4 | 50.0 [" in md and "| 75.0 [" in md


def test_weighted_instruction_draws_are_deterministic_and_weighted():
    plain = InstructionPool(seed=0)
    weighted = InstructionPool(seed=0, category_weights={"music": 20})
    ids = [f"clip{i}" for i in range(300)]
    music = set(weighted.by_category["music"])
    share = sum(weighted.sample(i, "music") in music for i in ids) / len(ids)
    share_plain = sum(plain.sample(i, "music") in music for i in ids) / len(ids)
    assert share > 0.8 > share_plain
    assert [weighted.sample(i, "music") for i in ids[:20]] == [InstructionPool(seed=0, category_weights={"music": 20})
                                                                 .sample(i, "music") for i in ids[:20]]
    with pytest.raises(ValueError, match="unknown categories"):
        InstructionPool(category_weights={"musik": 2})


def test_attribute_mentions_counts_answers_naming_the_label():
    meta = {"a": {"gender": "Female"}, "b": {"gender": "Male", "instrument": "violin"}}
    rows = [{"utt_id": "a", "response": "The speaker is a woman."}, {"utt_id": "a", "response": "A female voice."},
            {"utt_id": "b", "response": "A man plays the violin."}]
    counts = attribute_mentions(rows, meta)
    assert counts["gender"] == {"rows": 3, "named": 1, "share": 33.3}
    assert counts["instrument"] == {"rows": 1, "named": 1, "share": 100.0}


def test_stage7_runs_every_control_and_writes_the_table(tiny_model_config, tmp_path):
    """Score CLI with score.controls on a tiny model: silence, untrained, constant and oracle rows, table in RESULTS.md."""
    import numpy as np
    import soundfile as sf
    import torch
    import yaml

    from toolkit.bin import score
    from toolkit.data.datadir import Utterance, write_data_dir
    from toolkit.models.lalm import LALM

    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    LALM.from_config(tiny_model_config).save_pretrained(model_dir)
    utts, rows = [], []
    for i, gender in enumerate(["Female", "Male"] * 3):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, np.random.default_rng(i).standard_normal(8000).astype(np.float32) * 0.1, 16000)
        utts.append(Utterance(id=f"u{i}", audio=str(path), text="hi", speaker=None, metadata={"gender": gender}))
        rows.append({"id": f"u{i}#gender", "utt_id": f"u{i}", "dataset": "t", "audio": str(path), "text": None,
                     "prompt": "What is the gender of the speaker? Is it Female or Male?", "reference": gender,
                     "metric": "closed_set", "choices": ["Female", "Male"], "task": "gender"})
    test_dir = tmp_path / "data" / "test"
    write_data_dir(test_dir, utts, dataset="t")
    (test_dir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (test_dir / "seed_descriptions.jsonl").write_text("".join(
        json.dumps({"id": u.id, "seed_description": f"[00:00-00:01] hi (Gender: {u.metadata['gender']})"}) + "\n"
        for u in utts))
    decode_dir = tmp_path / "exp" / "decode" / "test"
    decode_dir.mkdir(parents=True)
    (decode_dir / "decode.jsonl").write_text("".join(json.dumps({**r, "prediction": r["reference"]}) + "\n"
                                                     for r in rows))
    cfg = {"score": {"out_dir": str(tmp_path / "exp"), "inputs": [str(tmp_path / "exp" / "decode")],
                     "controls": {"model_dir": str(model_dir), "eval_sets": [str(test_dir)], "batch_size": 4,
                                  "generation": {"max_new_tokens": 3}}}}
    conf = tmp_path / "score.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    assert score.main(["--config", str(conf)]) == 0
    table = json.loads((tmp_path / "exp" / "controls.json").read_text())
    [entry] = table
    assert entry["task"] == "gender" and entry["trained"]["value"] == 100.0
    assert {"silence", "untrained", "constant", "oracle"} <= set(entry)
    assert entry["constant"]["value"] == 50.0
    for condition in ("silence", "untrained", "oracle"):
        decoded = [json.loads(x) for x in (tmp_path / "exp" / "controls" / condition / "test.jsonl").read_text().splitlines()]
        assert sorted(r["id"] for r in decoded) == sorted(r["id"] for r in rows)
    md = (tmp_path / "exp" / "RESULTS.md").read_text()
    assert "## Perception controls" in md and "| test | gender | 6 | 100.0 [" in md


def test_untrained_control_keeps_the_trained_normalisation_statistics(tiny_model_config, tmp_path):
    """The untrained control differs from the trained model in weights only, not in the data statistics it saved."""
    import torch

    from toolkit.models.lalm import LALM
    from toolkit.score.controls import _keep_trained_buffers

    cfg = {**tiny_model_config, "adapter": {"name": "pooled", "num_vectors": 2, "normalize": "global"}}
    torch.manual_seed(0)
    trained = LALM.from_config(cfg)
    trained.adapter.train()(*_states(trained))
    trained.save_pretrained(tmp_path)
    torch.manual_seed(1)
    fresh = LALM.from_config(cfg)
    assert fresh.adapter.frames_seen.item() == 0
    _keep_trained_buffers(fresh, tmp_path)
    for name in ("channel_mean", "channel_var", "frames_seen"):
        assert torch.equal(getattr(fresh.adapter, name), getattr(trained.adapter, name)), name
    assert not torch.equal(fresh.adapter.proj.weight, trained.adapter.proj.weight)


def _states(model):
    import torch

    width, taps = model.encoder.output_size, model.encoder.num_tapped
    return [torch.randn(2, 10, width) * 3 + 1 for _ in range(taps)], torch.tensor([10, 6])
