"""The embedded mini corpus: balanced small build, determinism, splits, eval manifest, stages 1-3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from toolkit.config import cache_dir
from toolkit.data.corpora.base import CorpusError
from toolkit.data.corpora.mini import MiniCorpus

SOUNDFONT = cache_dir() / "audio" / "soundfont" / "TimGM6mb.sf2"


def _has_music() -> bool:
    import importlib.util

    return importlib.util.find_spec("tinysoundfont") is not None and SOUNDFONT.is_file()


@pytest.fixture()
def animals(tmp_path):
    """Stand-in animal mp3s (the real ones come from tools/prepare_assets.py)."""
    root = tmp_path / "animals"
    root.mkdir()
    for i, name in enumerate(["cat", "cow", "dog", "owl"]):
        t = np.arange(8000) / 16000
        sf.write(str(root / f"{name}.mp3"), 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t), 16000, format="MP3")
    return root


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_small_build_is_balanced_and_deterministic(tmp_path, animals):
    corpus = MiniCorpus(max_clips=24, animals_dir=str(animals), soundfont=str(SOUNDFONT))
    sets = corpus.prepare(tmp_path / "data")
    assert set(sets) == {"train", "dev", "test"}
    metas = {name: _read(d.path / "metadata.jsonl") for name, d in sets.items()}
    all_meta = [m for rows in metas.values() for m in rows]
    cats = [m["category"] for m in all_meta]
    if _has_music():
        assert len(all_meta) == 24 and cats.count("speech") == cats.count("sound") == cats.count("music") == 8
    else:
        assert cats.count("music") == 0 and cats.count("speech") == cats.count("sound") >= 8
    assert {m["source"] for m in all_meta if m["category"] == "speech"} == {"pocketsphinx", "asterisk", "flite", "espeak"}
    assert {m["gender"] for m in all_meta if m["source"] in ("flite", "espeak")} == {"Female", "Male"}
    # every category has test clips; splits do not overlap
    assert {m["category"] for m in metas["test"]} == set(cats)
    ids = [m["id"] for m in all_meta]
    assert len(ids) == len(set(ids))
    # every clip decodes
    for d in sets.values():
        for utt in d.utterances():
            assert utt.load().size > 0
    # eval manifest: asr, gender, sound (+ instrument)
    rows = _read(tmp_path / "data" / "test" / "eval.jsonl")
    tasks = {r["task"] for r in rows}
    assert {"asr", "gender", "sound"} <= tasks and (("instrument" in tasks) == _has_music())
    for r in rows:  # a row names its clip by utt id only; decoding reads the audio from wav.scp
        assert set(r) >= {"id", "utt_id", "dataset", "text", "prompt", "reference", "metric", "choices"}
        assert "audio" not in r and r["utt_id"] in sets["test"].by_id()
        assert r["text"] is None and r["metric"] in ("wer", "label_accuracy", "closed_set")
        if r["metric"] == "closed_set":  # the label is one of the task's closed set; the prompt lists none
            assert r["reference"] in r["choices"] and not any(o in r["prompt"] for o in r["choices"])
            assert r["choices"] == sorted({x["choices"][0] for x in rows if x["task"] == r["task"]} | set(r["choices"]))
    # same seed, same corpus; another seed, another one
    again = MiniCorpus(max_clips=24, animals_dir=str(animals), soundfont=str(SOUNDFONT)).prepare(tmp_path / "again")
    assert (again["train"].path / "text").read_text() == (sets["train"].path / "text").read_text()
    other = MiniCorpus(max_clips=24, seed=3, animals_dir=str(animals), soundfont=str(SOUNDFONT)).prepare(tmp_path / "o")
    assert (other["train"].path / "text").read_text() != (sets["train"].path / "text").read_text()


def test_audio_after_prompt_and_instruction_following_rows(tmp_path, animals):
    corpus = MiniCorpus(max_clips=24, animals_dir=str(animals), soundfont=str(SOUNDFONT), audio_after_prompt=True,
                        if_eval_clips=5, test_percent=40)
    corpus.prepare(tmp_path / "data")
    rows = _read(tmp_path / "data" / "test" / "eval.jsonl")
    assert rows and all(r["prompt"].endswith("\n\n<|AUDIO|>") for r in rows)
    follow = [r for r in rows if r["metric"] == "ifeval"]
    assert len(follow) == 5 and len({r["instruction_id_list"][0] for r in follow}) == 5  # constraints in turn
    assert all(r["task"] == "instruction_following" and len(r["kwargs"]) == 1 for r in follow)


def test_missing_animals_names_the_fix(tmp_path):
    with pytest.raises(CorpusError, match="tools/prepare_assets.py"):
        MiniCorpus(max_clips=4, animals_dir=str(tmp_path / "none")).prepare(tmp_path / "data")


def test_unknown_source_is_refused():
    with pytest.raises(CorpusError, match="unknown source"):
        MiniCorpus(sources=["pocketsphinx", "radio"])


def test_stages_1_to_3_cli(tmp_path, animals):
    from toolkit.bin import check_data, prepare_data, seed_descriptions

    cfg = tmp_path / "mini.yaml"
    cfg.write_text(f"data:\n  corpus:\n    name: mini\n    animals_dir: {animals}\n    soundfont: {SOUNDFONT}\n"
                   f"  data_dir: {tmp_path / 'data'}\n")
    assert prepare_data.main(["--config", str(cfg), "data.corpus.max_clips=12", "data.sets=[train,test]"]) == 0
    assert sorted(p.parent.name for p in (tmp_path / "data").glob("*/.done")) == ["test", "train"]
    assert "max_clips: 12" in (tmp_path / "data" / "train" / "config.prepare.yaml").read_text()
    assert check_data.main(["--config", str(cfg), "data.check.nj=1"]) == 0
    assert (tmp_path / "data" / "test" / ".check.done").exists()
    assert seed_descriptions.main(["--config", str(cfg)]) == 0
    rows = _read(tmp_path / "data" / "train" / "seed_descriptions.jsonl")
    assert rows and all(r["seed_description"].startswith("[00:00-") for r in rows)
    with pytest.raises(Exception, match="unknown key"):
        prepare_data.main(["--config", str(cfg), "data.corpus.max_clip=3"])

    # Each stage owns its done marker: a rerun skips, deleting the marker (or --force) redoes the stage.
    train_dir = tmp_path / "data" / "train"
    (train_dir / "seed_descriptions.jsonl").unlink()
    assert seed_descriptions.main(["--config", str(cfg)]) == 0
    assert not (train_dir / "seed_descriptions.jsonl").exists()
    (train_dir / ".seed.done").unlink()
    assert seed_descriptions.main(["--config", str(cfg)]) == 0
    assert _read(train_dir / "seed_descriptions.jsonl") == rows and (train_dir / ".seed.done").exists()
    (train_dir / "utt2dur").unlink()
    assert check_data.main(["--config", str(cfg), "data.check.nj=1"]) == 0
    assert not (train_dir / "utt2dur").exists()
    assert check_data.main(["--config", str(cfg), "data.check.nj=1", "--force"]) == 0
    assert (train_dir / "utt2dur").exists()
    before = (train_dir / "wav.scp").stat().st_mtime_ns
    assert prepare_data.main(["--config", str(cfg), "data.corpus.max_clips=12", "data.sets=[train,test]"]) == 0
    assert (train_dir / "wav.scp").stat().st_mtime_ns == before and (train_dir / ".seed.done").exists()
    (train_dir / ".done").unlink()
    assert prepare_data.main(["--config", str(cfg), "data.corpus.max_clips=12", "data.sets=[train,test]"]) == 0
    # prepared again: the later stages' markers describe the old contents and are gone, so they rerun too
    assert (train_dir / ".done").exists() and not (train_dir / ".seed.done").exists()


@pytest.mark.slow
def test_full_build_with_real_assets(tmp_path):
    """The default ~300-clip corpus from the real cached assets (run tools/prepare_assets.py first)."""
    if not (cache_dir() / "audio" / "animals").is_dir():
        pytest.fail("animal sounds missing: run `python tools/prepare_assets.py`")
    sets = MiniCorpus().prepare(tmp_path / "data")
    total = sum(len(d) for d in sets.values())
    assert 250 <= total <= 350
    from toolkit.data.check import check_data_dir

    for d in sets.values():
        result = check_data_dir(d.path, nj=2, progress=False)
        assert not result.bad, result.bad
