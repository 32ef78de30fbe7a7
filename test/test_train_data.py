"""Training data: row filtering, bad audio, collate, bucketing sampler (determinism, DDP split, resume)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import test_train_fakes as fakes
from toolkit.train.data import (
    AQADataset,
    BadAudioLog,
    BucketBatchSampler,
    Collator,
    DataError,
    read_rows,
)


def _row(i: int, audio: str, finish: str = "stop", text: str = "hello") -> dict:
    return {"id": f"utt{i}-p0", "dataset": "x", "prompt": "What?", "response": f"answer {i}", "finish_reason": finish,
            "messages": [{"role": "user", "content": "<|AUDIO|>\nWhat?", "audios": [{"audio": audio, "text": text}]},
                         {"role": "assistant", "content": f"answer {i}"}]}


def test_finish_reason_length_rows_excluded_and_counted(tmp_path: Path, caplog):
    rows = [_row(0, "a.wav"), _row(1, "b.wav", finish="length"), _row(2, "c.wav"), _row(3, "d.wav", finish="length")]
    for r, d in zip(rows, (1.0, 1.0, 2.0, 1.0)):
        r["messages"][0]["audios"][0]["duration"] = d
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("INFO"):
        samples, stats = read_rows(path, audio_root=str(tmp_path))
    assert [s.id for s in samples] == ["utt0-p0", "utt2-p0"]
    assert stats.truncated == 2 and stats.rows == 4 and stats.kept == 2
    assert stats.dropped_ids["finish_reason_length"] == ["utt1-p0", "utt3-p0"]
    assert "excluded 2 with finish_reason=length" in caplog.text
    # the trailing assistant turn is the target, not part of the prompt; relative audio resolved
    assert samples[0].messages[-1]["role"] == "user" and samples[0].response == "answer 0"
    assert samples[0].audios[0]["audio"] == str(tmp_path / "a.wav")


def _data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data" / "train"
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("utt0 /x/utt0.wav\nutt1 /x/utt1.wav\nutt2 /new/utt2.flac\n")
    (d / "utt2dur").write_text("utt0 1.5\nutt1 2.5\nutt2 3.5\n")
    (d / "bad_utts").write_text("utt1\tnot decodable\n")
    return d


def test_clips_are_looked_up_by_utt_id_in_the_data_dirs(tmp_path: Path):
    from toolkit.data.datadir import UttIndex

    d = _data_dir(tmp_path)
    rows = [{**_row(i, f"/x/utt{i}.wav"), "utt_id": f"utt{i}"} for i in range(3)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples, stats = read_rows(path, utts=UttIndex([d]))
    assert [s.id for s in samples] == ["utt0-p0", "utt2-p0"] and stats.bad_utts == 1  # utt1 is in bad_utts
    assert [s.duration for s in samples] == [1.5, 3.5]  # utt2dur, no header read (the files do not exist)
    assert [a["utt_id"] for s in samples for a in s.audios] == ["utt0", "utt2"]
    assert samples[1].audios[0]["audio"] == "/new/utt2.flac"  # the source is wav.scp's, not the row's copy


def test_rows_without_utt_id_are_refused_with_data_dirs(tmp_path: Path):
    from toolkit.data.datadir import UttIndex

    d = _data_dir(tmp_path)
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(_row(0, "/x/utt0.wav")) + "\n")  # an old self-generated row: no utt_id
    with pytest.raises(DataError) as err:
        read_rows(path, utts=UttIndex([d]))
    assert f"{path}:1" in str(err.value) and "no 'utt_id'" in str(err.value) and "rerun stage 4" in str(err.value)
    path.write_text(json.dumps({**_row(0, "/x/utt0.wav"), "utt_id": "elsewhere"}) + "\n")
    with pytest.raises(DataError, match="utt_id 'elsewhere' is in none of train.data.data_dirs"):
        read_rows(path, utts=UttIndex([d]))


def test_published_rows_are_named_by_their_audio_path(tmp_path: Path):
    from toolkit.train.data import clip_id

    row = _row(0, "LibriTTS R/93/a.wav")
    row["messages"][0]["audios"][0].update(start=1.0, end=2.5)
    path = tmp_path / "aqa5m.jsonl"
    path.write_text(json.dumps(row) + "\n")
    samples, _ = read_rows(path, audio_root=str(tmp_path))
    a = samples[0].audios[0]
    assert a["utt_id"] == "LibriTTS%20R/93/a.wav@1.0-2.5" and a["audio"] == str(tmp_path / "LibriTTS R/93/a.wav")
    assert clip_id({"audio": "x y.wav", "utt_id": "u7"}) == "u7"  # an utt id always wins
    assert clip_id({"audio": "a%20b.wav"}) != clip_id({"audio": "a b.wav"})  # one id per path


def _dataset_and_collator(tmp_path: Path, corpus: dict, bad_log: Path):
    from toolkit.models.lalm import LALM

    cfg_path = fakes.write_config(tmp_path, corpus)
    from toolkit.config import load_config

    model = LALM.from_config(load_config(cfg_path))
    samples, _ = read_rows(corpus["train"], audio_root=corpus["audio_root"])
    ds = AQADataset(samples, BadAudioLog(bad_log))
    coll = Collator(model.formatter, model.encoder.feature_extractor(), model.max_seq_len, model.audio_vector_count())
    return model, ds, coll


def test_corrupt_audio_is_skipped_and_listed(tmp_path: Path):
    corpus = fakes.make_corpus(tmp_path, n_train=6, n_dev=1)
    broken = Path(corpus["audio_root"]) / "train_002.wav"
    broken.write_bytes(b"RIFF\x00\x00not really a wav file")
    bad_log = tmp_path / "exp" / "bad_audio.txt"
    model, ds, coll = _dataset_and_collator(tmp_path, corpus, bad_log)
    batch = coll([ds[i] for i in range(4)])
    assert batch["stats"]["skipped"] == 1 and batch["stats"]["samples"] == 3
    assert [s.id for s in batch["samples"]] == ["train000-p0", "train001-p0", "train003-p0"]
    assert batch["features"]["features"].shape[0] == 3
    listed = bad_log.read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith(str(broken) + "\t")
    out = model(conversations=batch["conversations"], features=batch["features"])
    assert np.isfinite(out["loss"].item())


def test_declared_vector_count_and_truncation(tmp_path: Path):
    corpus = fakes.make_corpus(tmp_path, n_train=2, n_dev=1)
    model, ds, coll = _dataset_and_collator(tmp_path, corpus, tmp_path / "bad.txt")
    # fake adapter: one vector per 25 frames of 20 ms = 2 vectors per second
    assert coll.vector_count(16000) == 2 and coll.vector_count(48000) == 6 and coll.vector_count.seconds(3.0) == 6
    s = ds.samples[0]
    prompt = model.formatter.encode(s.messages, [a.get("text") for a in s.audios])
    vectors = coll.vector_count(len(ds[0]["waveforms"][0]))
    coll.max_length = len(prompt.input_ids) + vectors + 3  # room for 3 target tokens: the response is cut and flagged
    batch = coll([ds[0]])
    conv = batch["conversations"][0]
    assert conv.truncated and batch["stats"]["truncated"] == 1
    assert sum(t != -100 for t in conv.labels) == 3
    assert len(conv.input_ids) + vectors == coll.max_length
    coll.max_length = len(prompt.input_ids) + vectors  # no room at all: the sample is dropped, not trained on nothing
    batch = coll([ds[0]])
    assert batch["stats"]["samples"] == 0 and batch["stats"]["skipped"] == 1


def _sampler(n: int = 50, **kw) -> BucketBatchSampler:
    rng = np.random.default_rng(1)
    durations = rng.uniform(0.5, 30, n).tolist()
    tokens = rng.integers(10, 300, n).tolist()
    return BucketBatchSampler(durations, tokens, **{"batch_size": 4, "seed": 3, "bucket_multiplier": 5, **kw})


def test_bucket_sampler_is_deterministic_per_seed_and_epoch():
    a, b = _sampler(), _sampler()
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
    assert list(_sampler(seed=4)) != list(_sampler(seed=3))
    every = sorted(i for batch in a for i in batch)
    assert every == list(range(50))  # one epoch covers every sample exactly once (single rank)


def test_bucketing_pads_less_than_random_batches():
    def waste(s: BucketBatchSampler) -> float:
        return sum(max(s.durations[i] for i in b) * len(b) - sum(s.durations[i] for i in b) for b in s)

    assert waste(_sampler(n=400)) < 0.3 * waste(_sampler(n=400, bucketing=False))


def test_bucket_sampler_ddp_split():
    ranks = [_sampler(n=50, num_replicas=3, rank=r) for r in range(3)]
    for s in ranks:
        s.set_epoch(1)
    per_rank = [list(s) for s in ranks]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == len(ranks[0])  # same number of steps
    seen = [i for batches in per_rank for b in batches for i in b]
    assert set(seen) == set(range(50))  # every sample somewhere (a few wrapped around to equalise ranks)
    single = _sampler(n=50)
    single.set_epoch(1)
    global_batches = single.all_batches(1)
    assert per_rank[1][0] == global_batches[1] and per_rank[0][1] == global_batches[3]


def test_bucket_sampler_resume_skips_done_batches():
    s = _sampler()
    s.set_epoch(1)
    full = list(s)
    s.resume(1, 5)
    assert list(s) == full[5:]
    assert list(s) == full  # the skip applies to one iteration only


def test_train_jsonl_takes_globs_and_lists_of_shards(tmp_path):
    """Sharded self-generation (and AQA5M's chunks) train without a manual merge."""
    import pytest

    from toolkit.train.data import DataError, read_rows

    for shard in range(2):
        rows = [{"id": f"s{shard}-{i}", "prompt": "q", "response": "r",
                 "messages": [{"role": "user", "content": "<|AUDIO|>\nq", "audios": [{"audio": "/x.wav", "text": "t", "duration": 1.0}]},
                              {"role": "assistant", "content": "r"}]} for i in range(3)]
        (tmp_path / f"train.shard{shard}of2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from toolkit.shards import make_identity, write_marker

    identity = make_identity("selfgen", {"generator": "x"}, None, 2)
    for shard in range(2):  # what stage 4 writes last (test/drills/test_shards.py drills the missing/stale cases)
        write_marker(tmp_path, shard, 2, identity, [tmp_path / f"train.shard{shard}of2.jsonl"])
    by_glob, _ = read_rows(str(tmp_path / "train*.jsonl"))
    by_plain, _ = read_rows(str(tmp_path / "train.jsonl"))  # the unsharded name of a sharded run means its shards
    by_list, _ = read_rows([str(tmp_path / "train.shard0of2.jsonl"), str(tmp_path / "train.shard1of2.jsonl")])
    assert sorted(s.id for s in by_glob) == sorted(s.id for s in by_list) == sorted(s.id for s in by_plain)
    assert len(by_glob) == 6
    with pytest.raises(DataError, match="no file matches"):
        read_rows(str(tmp_path / "dev*.jsonl"))


def test_a_feature_cache_keyed_the_old_way_is_refused_with_the_fix(tmp_path: Path):
    from toolkit.train.data import CACHE_INFO, CACHE_SCP, FeatureCache

    (tmp_path / CACHE_SCP).write_text("3f2a9c0e1b7d4a5e6f708192 feats.ark:10\n")  # sha1(source) keys
    (tmp_path / CACHE_INFO).write_text(json.dumps({"num_tapped": 4}))
    with pytest.raises(DataError, match="keyed by a hash of the audio path.*rebuild it"):
        FeatureCache(tmp_path)


def test_a_feature_cache_is_read_from_any_working_directory(tmp_path: Path, monkeypatch):
    import kaldiio
    import numpy as np

    from toolkit.train.data import CACHE_INFO, CACHE_KEYS, FeatureCache

    builder = tmp_path / "recipe"
    (builder / "dump" / "feats").mkdir(parents=True)
    monkeypatch.chdir(builder)  # the builder wrote cwd-relative entries: dump/feats/feats.ark:<offset>
    matrix = np.arange(6, dtype=np.float16).reshape(2, 3)
    with kaldiio.WriteHelper("ark,scp:dump/feats/feats.ark,dump/feats/feats.scp", write_function="numpy") as w:
        w["utt1"] = matrix
    (builder / "dump" / "feats" / CACHE_INFO).write_text(json.dumps({"num_tapped": 1, "keys": CACHE_KEYS}))
    assert (builder / "dump" / "feats" / "feats.scp").read_text().startswith("utt1 dump/feats/feats.ark:")
    monkeypatch.chdir(tmp_path)  # another recipe sharing the cache
    cache = FeatureCache(builder / "dump" / "feats")
    assert np.array_equal(cache.load({"utt_id": "utt1", "audio": "a.wav"}), matrix)
