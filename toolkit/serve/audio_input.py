"""Audio that arrives in a request (base64 bytes) -> mono float32 at 16 kHz, or a clear 400.

The bytes are written to a temporary file and read with ``toolkit.audio.load_audio`` (the one
audio reader), so a served clip is decoded exactly as a clip of the decode stage. On top of it a
server needs checks a data directory does not:

- the upload may not be audio at all, or be empty;
- it may be cut short in transit: libsndfile silently decodes what is there, so a WAV whose RIFF
  header promises more bytes than arrived, or an MP3/FLAC whose header promises more frames than
  decode, is refused (a truncated Ogg cannot be told apart from a short one and is accepted);
- it may be longer than the server's limit (checked from the header before decoding, and again
  after, since some headers carry no length).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile

import numpy as np

from toolkit.audio import SAMPLE_RATE, AudioError, load_audio, wav_truncation

FORMATS = ("wav", "flac", "mp3", "ogg")
# Headers that promise more audio than decodes by more than this are called truncated.
TRUNCATION_TOLERANCE_S = 0.1


class AudioInputError(ValueError):
    """An uploaded clip the server refuses; the message names the clip, the problem and the fix."""


def decode_base64(data: object, where: str) -> bytes:
    """The raw bytes of a base64 ``data`` field (data: URLs are accepted too)."""
    if not isinstance(data, str):
        raise AudioInputError(f"{where}.data: expected a base64 string, got {type(data).__name__}")
    if data.startswith("data:"):  # data:audio/wav;base64,....
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise AudioInputError(f"{where}.data: not valid base64 ({err}); send the file's bytes base64-encoded") from err
    if not raw:
        raise AudioInputError(f"{where}: the audio file is empty (0 bytes); send a complete wav/flac/mp3/ogg file")
    return raw


def decode_audio_bytes(raw: bytes, fmt: str, max_seconds: float | None, where: str) -> np.ndarray:
    """Decode one uploaded clip; ``where`` names it in errors (``messages[0].content[1].input_audio``)."""
    import soundfile as sf

    if fmt not in FORMATS:
        raise AudioInputError(f"{where}.format: '{fmt}' is not supported; use one of {', '.join(FORMATS)}")
    cut = wav_truncation(raw, len(raw)) if fmt == "wav" else None  # the reader's own check, before any decoding
    if cut:
        raise AudioInputError(f"{where}: the wav file is {cut} ({len(raw)} bytes received); resend the complete file")
    fd, path = tempfile.mkstemp(suffix=f".{fmt}", prefix="serve-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        declared = None
        try:
            info = sf.info(path)
            declared = info.frames / info.samplerate if info.frames > 0 and info.samplerate > 0 else None
        except Exception as err:  # not audio at all: libsndfile cannot even read a header
            raise AudioInputError(f"{where}: not a decodable {fmt} audio file ({err}); send wav, flac, mp3 or ogg bytes") from err
        if declared is not None and max_seconds is not None and declared > max_seconds:
            raise AudioInputError(f"{where}: audio is {declared:.1f} s long, over this server's limit of {max_seconds:g} s (--max-audio-seconds); cut the clip")
        try:
            wave = load_audio(path)
        except AudioError as err:
            raise AudioInputError(f"{where}: {err.reason}; send a complete, uncorrupted {fmt} file") from err
    finally:
        os.unlink(path)
    seconds = len(wave) / SAMPLE_RATE
    if max_seconds is not None and seconds > max_seconds:
        raise AudioInputError(f"{where}: audio is {seconds:.1f} s long, over this server's limit of {max_seconds:g} s (--max-audio-seconds); cut the clip")
    if declared is not None and declared - seconds > TRUNCATION_TOLERANCE_S:
        raise AudioInputError(f"{where}: the {fmt} file is truncated (header says {declared:.2f} s, only {seconds:.2f} s decode); resend the complete file")
    return wave


def decode_input_audio(part: object, max_seconds: float | None, where: str) -> np.ndarray:
    """An OpenAI ``input_audio`` object ``{"data": base64, "format": "wav"}`` -> waveform."""
    if not isinstance(part, dict):
        raise AudioInputError(f"{where}: expected an object {{'data': base64, 'format': 'wav'}}, got {type(part).__name__}")
    fmt = part.get("format")
    if fmt is None:
        raise AudioInputError(f"{where}.format: missing; say which of {', '.join(FORMATS)} the data is")
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise AudioInputError(f"{where}.format: '{fmt}' is not supported; use one of {', '.join(FORMATS)}")
    return decode_audio_bytes(decode_base64(part.get("data"), where), fmt, max_seconds, where)


def encode_file(path: str) -> dict[str, str]:
    """An ``input_audio`` object for a local file (clients and tests)."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    fmt = "ogg" if fmt in ("oga", "opus") else fmt
    with open(path, "rb") as f:
        return {"data": base64.b64encode(f.read()).decode("ascii"), "format": fmt}
