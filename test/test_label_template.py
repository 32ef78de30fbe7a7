"""The label-template targets (the conventional construction the ablation compares self-generation with)."""

import json

from toolkit.models.chat_engines import CHAT_ENGINES
from toolkit.models.chat_engines.label_template import label_target
from toolkit.selfgen.runner import SelfGenItem, run_selfgen


def test_label_target_states_each_label_and_the_transcript():
    meta = {"category": "speech", "gender": "Female", "accent": "British", "speed": "Fast", "voice": "x"}
    assert label_target(meta, "Excuse me?") == ('The speech says: "Excuse me?" The speaker is female. '
                                                "They speak with a British accent. The speaking speed is fast.")
    assert label_target({"sound": "dog_bark"}) == "This is the sound of a dog bark."
    assert label_target({"instrument": "violin", "note": "C4"}) == "This is a violin playing. The note is C4."


def test_runner_writes_template_targets_whatever_the_prompt(tmp_path):
    backend = CHAT_ENGINES.build({"name": "label_template"}, "selfgen.backend")
    items = [SelfGenItem(id=f"u{i}-p0", utt_id=f"u{i}", dataset="mini", audio={"audio": "a.wav"},
                         seed_description="[00:00-00:01] (Audio category: cat, Duration: 1s)", prompt=p,
                         metadata={"sound": "cat"}) for i, p in enumerate(["What is this?", "Write a poem about it."])]
    out = tmp_path / "train.jsonl"
    stats = run_selfgen(items, backend, out, batch_size=4, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert stats["written"] == 2 and [r["utt_id"] for r in rows] == ["u0", "u1"]
    assert {r["response"] for r in rows} == {"This is the sound of a cat."}
    assert rows[1]["messages"][-1]["content"] == "This is the sound of a cat."


def test_the_ablation_label_targets_draw_the_embedded_defaults_clips_and_prompts():
    from pathlib import Path

    from toolkit.config import load_config, to_container

    egs = Path(__file__).resolve().parent.parent / "egs" / "mini"
    label = to_container(load_config(egs / "ablation_targets" / "conf" / "label_targets.yaml").selfgen)
    own = to_container(load_config(egs / "desta25" / "conf" / "desta25.yaml", ["data_dir=../desta25/data"]).selfgen)
    assert label["backend"] == {"name": "label_template"}
    for key in ("data_dirs", "prompts_per_clip", "instructions", "template"):
        assert label[key] == own[key], key
