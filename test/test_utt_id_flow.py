"""One clip followed from wav.scp to the scorer's per-item details by its utt id alone.

A tiny data dir (two recordings, one of them cut into two segments) goes through the check stage (utt2dur,
a formatted 16 kHz copy), self-generation, the feature cache, decoding and scoring; at every seam the id a
row or a cache entry carries must be the data dir's utterance id, and the audio must be what wav.scp says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

import test_train_fakes  # noqa: F401  (registers the fake encoder the feature cache runs)
from toolkit.data.check import check_data_dir
from toolkit.data.corpora.base import eval_row
from toolkit.data.datadir import DataDir, Utterance, write_data_dir
from toolkit.jsonl import read_jsonl, write_jsonl
from toolkit.models.generation import Generation


class EchoBackend:
    """Self-generation backend: answers every conversation with a fixed sentence."""

    def generate(self, conversations):
        return [Generation(text="A short answer.", num_tokens=4, finish_reason="stop") for _ in conversations]


class LengthModel:
    """Decoding model: answers with the number of samples it was given, so the test sees which audio was read."""

    def generate(self, conversations, generation=None, return_details=False):
        from toolkit.models.generation import Generation

        return [Generation(text=str(len(c[-1]["audios"][0]["audio"])), num_tokens=1, finish_reason="stop", transcripts=[""])
                for c in conversations]


def tiny_data_dir(root: Path) -> DataDir:
    rng = np.random.default_rng(0)
    long_wav, short_wav = root / "rec_long.wav", root / "rec_short.wav"
    sf.write(long_wav, (0.1 * rng.standard_normal(3 * 8000)).astype(np.float32), 8000)  # 3 s at 8 kHz
    sf.write(short_wav, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)  # 1 s at 16 kHz
    meta = {"category": "sound"}
    utts = [Utterance("rec_long-a", str(long_wav), "", start=0.0, end=1.25, recording="rec_long", metadata=meta),
            Utterance("rec_long-b", str(long_wav), "", start=1.25, end=3.0, recording="rec_long", metadata=meta),
            Utterance("rec_short", str(short_wav), "", start=0.0, end=None, recording="rec_short", metadata=meta)]
    d = write_data_dir(root / "data" / "test", utts, dataset="tiny")
    write_jsonl(d.file("seed_descriptions.jsonl"),
                ({"id": u.id, "seed_description": "(Audio category: noise)"} for u in utts))
    write_jsonl(d.file("eval.jsonl"), (eval_row(u, "What is this sound?", "noise", "wer") for u in utts))
    return d


def test_a_clip_keeps_its_utt_id_from_wav_scp_to_the_score_details(tmp_path: Path):
    from toolkit.bin.cache_features import main as cache_main
    from toolkit.models.eval_decoding import decode_rows
    from toolkit.score.base import score_file
    from toolkit.selfgen.instructions import InstructionPool
    from toolkit.selfgen.runner import build_items, run_selfgen

    d = tiny_data_dir(tmp_path)
    utt_ids = ["rec_long-a", "rec_long-b", "rec_short"]
    assert d.ids() == utt_ids and "rec_long-a" not in d.file("wav.scp").read_text()  # segments name the utterances

    # stage 2: utt2dur, and a 16 kHz copy whose wav.scp points at new files; eval.jsonl is copied, not rewritten
    formatted = tmp_path / "data" / "test_16k"
    check = check_data_dir(d.path, nj=1, format_dir=formatted, progress=False)
    assert check.bad == {} and check.durations == {"rec_long-a": 1.25, "rec_long-b": 1.75, "rec_short": 1.0}
    manifest = read_jsonl(formatted / "eval.jsonl")
    assert [r["utt_id"] for r in manifest] == utt_ids and not any("audio" in r for r in manifest)

    # stage 4: every self-generated row (and its audio entry) names its clip, with the utt2dur duration
    selfgen_out = tmp_path / "selfgen" / "test.jsonl"
    run_selfgen(list(build_items([d.path], InstructionPool(seed=0), 2)), EchoBackend(), selfgen_out, progress=False)
    rows = read_jsonl(selfgen_out)
    assert sorted(r["utt_id"] for r in rows) == sorted(utt_ids * 2)
    for r in rows:
        audio = r["messages"][0]["audios"][0]
        assert audio["utt_id"] == r["utt_id"] and audio["duration"] == check.durations[r["utt_id"]]

    # stage 5's feature cache: one entry per clip, keyed by its utt id
    cache = tmp_path / "feats"
    data = {"train_jsonl": str(selfgen_out), "data_dirs": [str(d.path)], "feature_cache": str(cache)}
    cfg = {"encoder": {"name": "train_fake_encoder"}, "train": {"data": data}}
    (tmp_path / "cache.yaml").write_text(yaml.safe_dump(cfg))
    assert cache_main(["--config", str(tmp_path / "cache.yaml")]) == 0
    scp_keys = [line.split()[0] for line in (cache / "feats.scp").read_text().splitlines()]
    assert sorted(scp_keys) == utt_ids
    sources = dict(line.split("\t") for line in (cache / "keys.tsv").read_text().splitlines())
    assert sources == {u.id: u.audio for u in d.utterances()}

    # stage 6: the manifest's rows get their audio from the formatted dir's wav.scp at read time
    eval_rows = DataDir(formatted).eval_rows()
    assert {r["utt_id"]: r["audio"] for r in eval_rows} == {u: str(formatted.resolve() / "audio" / f"{u}.wav")
                                                             for u in utt_ids}
    assert {r["utt_id"]: r["duration"] for r in eval_rows} == check.durations  # utt2dur: no header read
    decoded = tmp_path / "decode" / "test" / "decode.jsonl"
    decode_rows(LengthModel(), eval_rows, decoded, batch_size=2, progress=False)
    out = {r["utt_id"]: r for r in read_jsonl(decoded)}
    assert sorted(out) == utt_ids
    samples_read = {u: int(r["prediction"]) for u, r in out.items()}  # the formatted 16 kHz files were decoded
    assert samples_read == {u: round(16000 * s) for u, s in check.durations.items()}

    # stage 7: the per-item details keep the id
    details = tmp_path / "score" / "details" / "test.jsonl"
    score_file(decoded, "test", details_out=details)
    assert sorted(r["utt_id"] for r in read_jsonl(details)) == utt_ids
    assert all(r["id"] == r["utt_id"] for r in read_jsonl(details))  # one question per clip: the row id is the utt id
    assert json.loads((cache / "cache_info.json").read_text())["keys"] == "utt_id"
