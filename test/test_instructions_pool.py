"""Instruction pool: >= 500 distinct instructions, per-task pools, deterministic per (seed, utt_id)."""

from __future__ import annotations

import pytest

from toolkit.selfgen.instructions import INSTRUCTIONS_DIR, TASK_CATEGORIES, InstructionPool, read_instructions


def test_at_least_500_distinct_instructions():
    pool = InstructionPool()
    assert len(pool) >= 500
    everything = [i for f in INSTRUCTIONS_DIR.glob("*.txt") for i in read_instructions(f)]
    assert len(set(everything)) == len(everything), "an instruction appears in two files"


def test_sampling_is_deterministic_and_seeded():
    a, b = InstructionPool(seed=1), InstructionPool(seed=1)
    ids = [f"utt{i}" for i in range(200)]
    first = [a.sample(u, "speech") for u in ids]
    assert first == [b.sample(u, "speech") for u in reversed(ids)][::-1]  # order does not matter
    assert first != [InstructionPool(seed=2).sample(u, "speech") for u in ids]
    assert len(set(first)) > 100  # it really spreads over the pool


def test_per_task_pools():
    pool = InstructionPool()
    sound_file = set(read_instructions(INSTRUCTIONS_DIR / "sound.txt"))
    speaker_file = set(read_instructions(INSTRUCTIONS_DIR / "speaker.txt"))
    music_file = set(read_instructions(INSTRUCTIONS_DIR / "music.txt"))
    assert not speaker_file & set(pool.pool("sound"))
    assert sound_file <= set(pool.pool("sound"))
    assert not sound_file & set(pool.pool("music")) and music_file <= set(pool.pool("music"))
    for u in range(100):
        assert pool.sample(f"x{u}", "sound") not in speaker_file
        assert pool.sample(f"x{u}", "speech") not in sound_file | music_file
    assert set(pool.categories_for("speech")) == set(TASK_CATEGORIES["speech"])


def test_categories_and_extra_files(tmp_path):
    extra = tmp_path / "mine.txt"
    extra.write_text("# my prompts\nSay something nice about the audio.\n\n")
    pool = InstructionPool(categories=["format"], files=[str(extra)])
    assert "Say something nice about the audio." in pool.pool("sound")
    assert set(pool.pool("music")) <= set(read_instructions(INSTRUCTIONS_DIR / "format.txt")) | {
        "Say something nice about the audio."}
    with pytest.raises(ValueError, match="unknown instruction categories"):
        InstructionPool(categories=["nope"])


def test_a_corpus_folder_replaces_shipped_categories_and_keeps_their_meaning(tmp_path):
    (tmp_path / "sound.txt").write_text("# mine\nWhich animal is this?\nName the sound's source.\n")
    pool = InstructionPool(directory=str(tmp_path), categories=["sound", "speaker"])
    assert pool.pool("sound") == ["Which animal is this?", "Name the sound's source."]
    # the folder lacks speaker.txt: that category still comes from the shipped pool
    assert pool.pool("speech") == read_instructions(INSTRUCTIONS_DIR / "speaker.txt")
    with pytest.raises(FileNotFoundError, match="selfgen.instructions.directory"):
        InstructionPool(directory=str(tmp_path / "missing"))


def test_the_digest_is_what_can_be_drawn_not_where_it_was_read(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sound.txt").write_text("Which animal is this?\n")
    same = {InstructionPool(directory=str(tmp_path / n), seed=0).digest() for n in ("a", "b")}
    assert len(same) == 1
    (tmp_path / "b" / "sound.txt").write_text("Which animal is this?\nWhat makes this noise?\n")
    assert InstructionPool(directory=str(tmp_path / "b"), seed=0).digest() not in same
    assert InstructionPool(directory=str(tmp_path / "a"), seed=1).digest() not in same
