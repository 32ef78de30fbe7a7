"""Kaldi data dir reading/writing: sort order, validation with file:line errors, segments, ark, pipes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toolkit.jsonl import JsonlError
import soundfile as sf

from toolkit.data.datadir import DataDir, DataDirError, Utterance, write_data_dir


def _wav(path, seconds=0.5, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), rate)
    return str(path)


def test_write_sorts_in_c_order_and_reads_back(tmp_path):
    wav = _wav(tmp_path / "a.wav")
    utts = [Utterance(id=i, audio=wav, text=f"text {i}", speaker=i[:2], metadata={"category": "speech", "gender": "Male"})
            for i in ["b-1", "B-2", "a-3", "a_1"]]
    d = write_data_dir(tmp_path / "d", utts, dataset="toy")
    ids = [line.split()[0] for line in (tmp_path / "d" / "wav.scp").read_text().splitlines()]
    assert ids == ["B-2", "a-3", "a_1", "b-1"]  # C locale: upper case first, '-' before '_'
    assert (tmp_path / "d" / "spk2utt").read_text().splitlines()[0] == "B- B-2"
    got = list(d.utterances())
    assert [u.id for u in got] == ids
    assert got[0].text == "text B-2" and got[0].speaker == "B-" and got[0].dataset == "toy"
    assert got[0].metadata["gender"] == "Male"
    assert got[0].load().shape == (8000,)


def test_writer_refuses_duplicates_and_empty_speech_text(tmp_path):
    wav = _wav(tmp_path / "a.wav")
    with pytest.raises(DataDirError, match="duplicate id"):
        write_data_dir(tmp_path / "d", [Utterance("x", wav, "hi"), Utterance("x", wav, "ho")])
    with pytest.raises(DataDirError, match="speech clip with empty text"):
        write_data_dir(tmp_path / "d", [Utterance("x", wav, "", metadata={"category": "speech"})])
    # a sound clip may have empty text
    d = write_data_dir(tmp_path / "d", [Utterance("x", wav, "", metadata={"category": "sound"}), Utterance("y", wav, "hi")])
    assert [u.text for u in d.utterances()] == ["", "hi"]


def test_reader_errors_name_file_and_line(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text("a /x.wav\nb /y.wav\na /z.wav\n")
    with pytest.raises(DataDirError, match=r"wav.scp:3: duplicate id 'a'"):
        DataDir(d).validate()
    (d / "wav.scp").write_text("a /x.wav\nb /y.wav\n")
    (d / "text").write_text("a hello\n")
    with pytest.raises(DataDirError, match=r"text: no line for utterance 'b'"):
        DataDir(d).validate()
    (d / "text").write_text("a hello\nb\n")
    (d / "metadata.jsonl").write_text('{"id": "a"}\n{bad json\n')
    with pytest.raises(JsonlError, match=r"metadata.jsonl:2: not valid JSON"):
        DataDir(d).validate()


def test_segments_pipes_and_ark_entries(tmp_path):
    import kaldiio

    rec = _wav(tmp_path / "rec.wav", seconds=2.0)
    ark = tmp_path / "w.ark"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{tmp_path / 'w.scp'}") as writer:
        writer("arkutt", (16000, (np.ones(1600) * 1000).astype(np.int16)))
    ark_entry = (tmp_path / "w.scp").read_text().split()[1]
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"rec1 {rec}\nrec2 cat {rec} |\nrec3 {ark_entry}\n")
    (d / "segments").write_text("u1 rec1 0.5 1.0\nu2 rec2 0 -1\nu3 rec3 0 -1\n")
    utts = {u.id: u for u in DataDir(d).utterances()}
    assert utts["u1"].load().shape == (8000,)
    assert utts["u2"].audio.endswith("|") and utts["u2"].load().shape == (32000,)
    assert utts["u3"].load().shape == (1600,)
    # written back, the segments survive
    out = write_data_dir(tmp_path / "copy", list(utts.values()))
    assert (tmp_path / "copy" / "segments").exists()
    assert {u.id: (u.start, u.end) for u in out.utterances()}["u1"] == (0.5, 1.0)


def test_bad_utts_are_skipped_and_logged(tmp_path, caplog):
    wav = _wav(tmp_path / "a.wav")
    d = write_data_dir(tmp_path / "d", [Utterance(i, wav, "hi") for i in "abc"])
    (tmp_path / "d" / "bad_utts").write_text("b\tfile is empty\n")
    (tmp_path / "d" / "eval.jsonl").write_text("".join(json.dumps({"id": f"{i}#asr", "utt_id": i}) + "\n" for i in "abc"))
    with caplog.at_level("WARNING"):
        assert d.ids() == ["a", "c"]
        assert [r["utt_id"] for r in d.eval_rows()] == ["a", "c"]
    assert "skipping 1 of 3" in caplog.text
    assert d.ids(skip_bad=False) == ["a", "b", "c"]


def test_eval_rows_take_the_audio_from_wav_scp_by_utt_id(tmp_path):
    wav, other = _wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav", seconds=1.0)
    d = write_data_dir(tmp_path / "d", [Utterance("a", wav, "hi", duration=0.5),
                                        Utterance("b", other, "hi", duration=1.0)])
    rows = [{"id": "a#asr", "utt_id": "a", "audio": "/stale/copy.wav"}, {"id": "b#asr", "utt_id": "b"}]
    (tmp_path / "d" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = d.eval_rows()
    assert [(r["audio"], r["duration"]) for r in got] == [(wav, 0.5), (other, 1.0)]  # wav.scp and utt2dur win
    (tmp_path / "d" / "eval.jsonl").write_text(json.dumps({"id": "a#asr", "audio": wav}) + "\n")
    with pytest.raises(DataDirError, match=r"eval.jsonl:1: row 'a#asr' has no 'utt_id'.*rerun data preparation"):
        d.eval_rows()
    (tmp_path / "d" / "eval.jsonl").write_text(json.dumps({"id": "z#asr", "utt_id": "z"}) + "\n")
    with pytest.raises(DataDirError, match="utt_id 'z' is not an utterance of this data dir"):
        d.eval_rows()
    bench = tmp_path / "bench"  # a benchmark set: no wav.scp, the rows carry their audio
    bench.mkdir()
    (bench / "eval.jsonl").write_text(json.dumps({"id": "q1", "audio": wav}) + "\n")
    assert DataDir(bench).eval_rows() == [{"id": "q1", "audio": wav}]


def test_utt_index_refuses_one_id_for_two_clips(tmp_path):
    from toolkit.data.datadir import UttIndex

    wav, other = _wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav")
    write_data_dir(tmp_path / "d1", [Utterance("a", wav, "hi")])
    write_data_dir(tmp_path / "d2", [Utterance("a", other, "hi")])
    write_data_dir(tmp_path / "d3", [Utterance("a", wav, "hi")])
    assert UttIndex([tmp_path / "d1", tmp_path / "d3"]).utts["a"].audio == wav  # the same clip twice is fine
    with pytest.raises(DataDirError, match="utterance 'a' is in .*d1 and .*d2 with different audio"):
        UttIndex([tmp_path / "d1", tmp_path / "d2"])
    with pytest.raises(DataDirError, match="is not a directory"):
        UttIndex([tmp_path / "missing"])
