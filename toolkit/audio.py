"""The one audio reader: any ``wav.scp`` entry -> mono float32 at 16 kHz, with clear errors.

Sources, as Kaldi writes them in ``wav.scp``:
- a file path soundfile can read (wav, flac, ogg, mp3);
- a kaldiio ark entry, ``/path/feats.ark:1234`` (with ``ark:`` prefix or not);
- a command ending in ``|`` whose stdout is an audio file (``sox in.sph -t wav - |``).
"""

from __future__ import annotations

import io
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


class AudioError(RuntimeError):
    """An audio source that cannot be read; the message says which file, why, and the fix."""

    def __init__(self, source: str, reason: str, fix: str = ""):
        self.source, self.reason, self.fix = source, reason, fix
        super().__init__(f"cannot read audio '{source}': {reason}" + (f". Fix: {fix}" if fix else ""))


def _read_pipe(source: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    cmd = source.rstrip()[:-1].strip()
    proc = subprocess.run(cmd, shell=True, capture_output=True)
    if proc.returncode != 0:
        raise AudioError(source, f"command exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-300:]}",
                         "run the command by hand and check that its tools are installed")
    try:
        return sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile's LibsndfileError and friends
        raise AudioError(source, f"the command's output is not audio ({err})", "make the command write a wav/flac file to stdout") from err


# kaldiio unpickles any ark entry whose payload starts with b"PKL": whoever wrote the ark runs code here.
_allow_pickle = False


def set_allow_pickle(allow: bool) -> None:
    """Process-wide: may ark entries holding Python pickles be read (``data.allow_pickle``, default false)?

    Stage CLIs set it from the config; forked data-loader workers inherit it.
    """
    global _allow_pickle
    _allow_pickle = bool(allow)


class PickleRefused(ValueError):
    """An ark entry that is a Python pickle, read while ``data.allow_pickle`` is false."""


PICKLE_FIX = ("rewrite the ark without pickles (kaldiio.WriteHelper(..., write_function='numpy') or Kaldi's own "
              "matrix/wave format), or, only for a file you made yourself and trust, set data.allow_pickle: true")


def read_ark_entry(spec: str, allow_pickle: bool | None = None) -> object:
    """The value of one kaldiio ark entry ``<ark file>:<offset>`` (``ark:`` prefix allowed); pickles refused.

    kaldiio's own reader unpickles a payload starting with ``PKL``, which runs arbitrary code from the file
    (a shared feature cache or a downloaded wav.scp could carry it); the payload's first bytes are checked
    first, on the same open file.  Pipes (``cmd |``) are refused here: an ark entry names a file.
    """
    from kaldiio.matio import read_kaldi

    allow = _allow_pickle if allow_pickle is None else allow_pickle
    spec = spec[4:] if spec.startswith("ark:") else spec
    path, _, offset = spec.rpartition(":")
    if spec.rstrip().endswith("|") or spec.lstrip().startswith("|") or not path or not offset.isdigit():
        raise ValueError(f"'{spec}' is not an ark entry '<file>.ark:<byte offset>'")
    with open(path, "rb") as f:
        f.seek(int(offset))
        head = f.read(5)
        if head[:3] == b"PKL" and not allow:
            raise PickleRefused(f"the ark entry is a Python pickle (kaldiio 'PKL' payload at byte {offset} of {path}); "
                                f"unpickling runs arbitrary code from the file, so it is refused")
        f.seek(int(offset))
        return read_kaldi(f, "<")


def _read_ark(source: str, allow_pickle: bool | None = None) -> tuple[np.ndarray, int]:
    try:
        value = read_ark_entry(source, allow_pickle)
    except PickleRefused as err:
        raise AudioError(source, str(err), PICKLE_FIX) from None
    except Exception as err:  # missing ark, bad offset, truncated file
        raise AudioError(source, f"ark entry unreadable ({type(err).__name__}: {err})", "check the ark path and offset in wav.scp") from err
    if isinstance(value, tuple):  # (rate, int16 array) for wave arks
        rate, data = value
        data = np.asarray(data)
        if data.dtype == np.int16:
            data = data.astype(np.float32) / 32768.0
        return np.asarray(data, dtype=np.float32).reshape(len(data), -1), int(rate)
    raise AudioError(source, "the ark entry holds a feature matrix, not a waveform",
                     "point wav.scp at audio; feature caches are read by the training data loader")


def _looks_like_ark(source: str) -> bool:
    if source.startswith("ark:"):
        return True
    head, _, offset = source.rpartition(":")
    return head.endswith(".ark") and offset.isdigit()


def wav_truncation(head: bytes, size: int) -> str | None:
    """Why a RIFF/WAVE file of ``size`` bytes starting with ``head`` is cut short, or None when it is whole.

    libsndfile decodes what is there without a word, so a WAV whose header promises 2 s but holds 0.06 s
    reads as a 0.06 s clip.  The RIFF size and the ``data`` chunk size are compared with the bytes present;
    0 and 0xFFFFFFFF are what streaming writers put before they know the size (unknown, not truncated).
    ``head`` must reach the ``data`` chunk header (the first few KiB do for any ordinary WAV).
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    unknown = (0, 0xFFFFFFFF)
    declared = struct.unpack("<I", head[4:8])[0]
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        chunk, length = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if chunk == b"fmt " and pos + 16 <= len(head):
            byte_rate = struct.unpack("<I", head[pos + 16:pos + 20])[0] if pos + 20 <= len(head) else 0
        if chunk == b"data":
            present = size - (pos + 8)
            if length not in unknown and length > present:
                if byte_rate:
                    return (f"truncated: its header promises {length / byte_rate:.2f} s of audio but only "
                            f"{max(present, 0) / byte_rate:.2f} s are in the file")
                return (f"truncated: its header promises {length} bytes of audio but only {max(present, 0)} "
                        f"are in the file")
            break
        pos += 8 + length + (length & 1)
    if declared not in unknown and declared + 8 > size:
        return f"truncated: its RIFF header promises {declared + 8} bytes but the file has {size}"
    return None


def read_audio_raw(source: str, allow_pickle: bool | None = None) -> tuple[np.ndarray, int]:
    """Decode ``source`` without conversion: (samples (n, channels) float32, sample rate).

    ``allow_pickle``: may a pickled ark entry be read (None: the process setting, :func:`set_allow_pickle`).
    """
    import soundfile as sf

    source = str(source)
    if source.rstrip().endswith("|"):
        data, rate = _read_pipe(source)
    elif _looks_like_ark(source):
        data, rate = _read_ark(source, allow_pickle)
    else:
        path = Path(source)
        if not path.exists():
            raise AudioError(source, "file does not exist", "check the path in wav.scp (relative paths are read from the working directory)")
        if path.stat().st_size == 0:
            raise AudioError(source, "file is empty (0 bytes)", "re-download or regenerate the file, or remove it from wav.scp")
        with open(path, "rb") as f:
            cut = wav_truncation(f.read(65536), path.stat().st_size)
        if cut:
            raise AudioError(source, cut, "the file was cut short (an interrupted copy or download): copy it again, "
                             "or remove it from wav.scp")
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as err:  # soundfile raises LibsndfileError/RuntimeError with the codec's text
            raise AudioError(source, f"not decodable ({err})", "check the file is a complete wav/flac/ogg/mp3; convert other formats first") from err
    if data.size == 0:
        raise AudioError(source, "decoded to zero samples", "the file holds no audio; remove it from the data dir")
    if not np.all(np.isfinite(data)):
        raise AudioError(source, "contains NaN or Inf samples", "the file is corrupt; regenerate it")
    return data, int(rate)


def resample(samples: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """High-quality resampling of a mono signal (soxr)."""
    if rate == target_rate:
        return samples
    import soxr

    return soxr.resample(samples, rate, target_rate).astype(np.float32)


@dataclass
class DecodedAudio:
    """What :func:`decode_audio` read: the mono samples and what was done to get them (the check stage notes it)."""

    samples: np.ndarray  # mono float32 at ``rate``
    rate: int
    source_rate: int
    channels: int  # channels in the source (averaged to mono)
    duration: float  # seconds of the (cut) clip, counted at the source rate
    recording_seconds: float  # length of the whole recording
    past_end: float  # seconds the requested segment ran past the recording's end (cut there); 0 when none


def decode_audio(
    source: str,
    sample_rate: int | None = SAMPLE_RATE,
    start: float | None = None,
    end: float | None = None,
    allow_pickle: bool | None = None,
) -> DecodedAudio:
    """The one decode path: ``source`` -> mono, cut to ``start``/``end`` (seconds), resampled to ``sample_rate``.

    ``sample_rate=None`` keeps the source rate (a check that only measures needs no resampling).
    A segment that starts past the end of the recording, or ends before it starts, raises :class:`AudioError`.
    """
    data, rate = read_audio_raw(source, allow_pickle=allow_pickle)
    channels = data.shape[1]
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    total = len(mono) / rate
    past_end = 0.0
    if start is not None or end is not None:
        lo = int(round((start or 0.0) * rate))
        hi = len(mono) if end is None else int(round(end * rate))
        if lo >= len(mono) or hi <= lo:
            raise AudioError(source, f"segment {start}-{end}s is outside the recording ({total:.2f}s)",
                             "fix the times in the segments file")
        past_end = max(0.0, (end or 0.0) - total) if end is not None else 0.0
        mono = mono[lo:hi]
    duration = len(mono) / rate
    target = rate if sample_rate is None else sample_rate
    samples = np.ascontiguousarray(resample(mono, rate, target), dtype=np.float32)
    return DecodedAudio(samples, target, int(rate), channels, duration, total, past_end)


def load_audio(
    source: str,
    sample_rate: int = SAMPLE_RATE,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Read ``source`` as mono float32 at ``sample_rate``; ``start``/``end`` (seconds) cut a segment."""
    return decode_audio(source, sample_rate, start, end).samples


def audio_duration(source: str) -> float:
    """Duration in seconds (reads the header only for plain files)."""
    import soundfile as sf

    source = str(source)
    if not source.rstrip().endswith("|") and not _looks_like_ark(source):
        path = Path(source)
        if not path.exists():
            raise AudioError(source, "file does not exist", "check the path in wav.scp")
        try:
            info = sf.info(str(path))
            if info.frames > 0:
                return info.frames / info.samplerate
        except Exception:
            pass  # fall through to a full decode, which raises a precise AudioError
    data, rate = read_audio_raw(source)
    return len(data) / rate
