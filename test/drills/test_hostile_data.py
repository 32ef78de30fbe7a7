"""Fault drill: hostile and broken data is refused or listed, with the file (and line) named.

- a kaldiio ark entry whose payload is a Python pickle (``PKL``) ran its code when read (wav.scp in stage 2,
  or a shared feature cache in training); now it is refused unless ``data.allow_pickle: true``;
- a WAV whose header promises 2 s with 0.06 s present passed stage 2 and was trained on;
- a non-UTF-8 ``text`` raised a bare ``UnicodeDecodeError`` (no file, no line);
- a speech clip with an empty transcript in a hand-made data dir passed stage 2 silently.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


class _Proof:
    """Unpickling this creates a file: proof that reading the ark ran code from it."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_ark(path: Path, key: str, payload: bytes) -> str:
    """One kaldiio ark entry (``<key> <payload>``); returns its ``<ark>:<offset>`` spec."""
    head = f"{key} ".encode()
    path.write_bytes(head + payload)
    return f"{path}:{len(head)}"


def data_dir(root: Path, wav_scp: dict[str, str], text: dict[str, str] | None = None, metadata: list[str] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in wav_scp.items()))
    if text is not None:
        (root / "text").write_text("".join(f"{k} {v}".rstrip() + "\n" for k, v in text.items()))
    if metadata:
        (root / "metadata.jsonl").write_text("".join(m + "\n" for m in metadata))
    return root


def bad_utts(root: Path) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in (root / "bad_utts").read_text().splitlines())


def test_pickled_ark_in_wav_scp_is_refused_unless_allowed(tmp_path: Path):
    from toolkit.data.check import check_data_dir

    proof = tmp_path / "code_ran"
    evil = write_ark(tmp_path / "evil.ark", "u1", b"PKL" + pickle.dumps(_Proof(proof)))
    tone = write_ark(tmp_path / "tone.ark", "u2", b"PKL" + pickle.dumps((16000, np.zeros(1600, np.int16))))
    d = data_dir(tmp_path / "d", {"u1": evil, "u2": tone})
    result = check_data_dir(d, nj=1, progress=False)
    assert not proof.exists()  # nothing from the file ran
    assert result.bad.keys() == {"u1", "u2"}
    reason = bad_utts(d)["u2"]
    assert "Python pickle" in reason and "arbitrary code" in reason and "data.allow_pickle: true" in reason

    result = check_data_dir(d, nj=2, progress=False, allow_pickle=True)  # the owner's choice, in spawned workers too
    assert proof.exists()  # ... which is exactly why it is off by default
    assert result.durations == {"u2": pytest.approx(0.1)}


def test_pickled_feature_cache_entry_is_refused(tmp_path: Path):
    from toolkit.train.data import CACHE_INFO, CACHE_SCP, DataError, FeatureCache

    proof = tmp_path / "code_ran"
    cache = tmp_path / "feats"
    cache.mkdir()
    spec = write_ark(cache / "feats.ark", "k", b"PKL" + pickle.dumps(_Proof(proof)))
    (cache / CACHE_SCP).write_text(f"u1 {spec}\n")
    (cache / CACHE_INFO).write_text('{"num_tapped": 1, "keys": "utt_id"}')
    with pytest.raises(DataError) as err:
        FeatureCache(cache).load({"audio": "a.wav", "utt_id": "u1"})
    assert not proof.exists()
    assert str(cache / CACHE_SCP) in str(err.value) and "arbitrary code" in str(err.value)
    (cache / CACHE_SCP).write_text(f"u1 touch {proof} |\n")  # a pipe is no cache entry either
    with pytest.raises(DataError, match="not an ark entry"):
        FeatureCache(cache).load({"audio": "a.wav", "utt_id": "u1"})
    assert not proof.exists()


def truncated_wav(path: Path, promised_s: float = 2.0, present_s: float = 0.06) -> Path:
    sf.write(path, np.full(int(16000 * promised_s), 0.1, np.float32), 16000, subtype="PCM_16")
    data = path.read_bytes()
    data_at = data.index(b"data") + 8
    path.write_bytes(data[: data_at + int(16000 * present_s) * 2])
    return path


def test_truncated_wav_is_bad_in_stage_2_and_unreadable_in_training(tmp_path: Path):
    from toolkit.audio import AudioError, load_audio
    from toolkit.data.check import check_data_dir

    cut = truncated_wav(tmp_path / "cut.wav")
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros(8000, np.float32), 16000)
    d = data_dir(tmp_path / "d", {"cut": str(cut), "whole": str(whole)})
    result = check_data_dir(d, nj=1, progress=False)
    assert result.durations == {"whole": 0.5}
    assert "header promises 2.00 s of audio but only 0.06 s are in the file" in bad_utts(d)["cut"]
    with pytest.raises(AudioError) as err:
        load_audio(str(cut))
    assert str(cut) in str(err.value) and "truncated" in str(err.value)


def test_streaming_wav_with_unknown_size_is_not_truncated(tmp_path: Path):
    from toolkit.audio import wav_truncation

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    data[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)
    assert wav_truncation(bytes(data), len(data)) is None


def test_non_utf8_tables_are_named_with_file_and_line(tmp_path: Path):
    from toolkit.data.datadir import DataDir
    from toolkit.jsonl import TextFileError
    from toolkit.train.data import read_rows

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    d = data_dir(tmp_path / "d", {"a": str(wav), "b": str(wav)})
    (d / "text").write_bytes("a hello\nb caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(TextFileError) as err:
        DataDir(d).validate()
    assert f"{d / 'text'}:2: not UTF-8 (byte 0xe9 at column 6" in str(err.value) and "iconv" in str(err.value)

    rows = tmp_path / "train.jsonl"
    rows.write_bytes(b'\n{"id": "caf\xe9"}\n')  # line 1 blank, line 2 Latin-1
    with pytest.raises(TextFileError, match=rf"{rows}:2: not UTF-8"):
        read_rows(str(rows))


def test_speech_clip_with_empty_text_is_flagged_in_stage_2(tmp_path: Path):
    from toolkit.data.check import check_data_dir

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    d = data_dir(tmp_path / "d", {"said": str(wav), "silent": str(wav), "knock": str(wav)},
                 text={"said": "hello there", "silent": "", "knock": ""},
                 metadata=['{"id": "knock", "category": "sound"}', '{"id": "said", "category": "speech"}',
                           '{"id": "silent", "category": "speech"}'])
    result = check_data_dir(d, nj=1, progress=False)
    assert sorted(result.durations) == ["knock", "said"]  # an empty text is right for a sound
    assert "speech clip with empty text" in bad_utts(d)["silent"]
