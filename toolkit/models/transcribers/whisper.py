"""Whisper's own decoder writes the transcript at inference (batched); a given text always wins.

The reference runs VAD even when a transcript is given and may replace it; we do not. With
``vad: true`` clips without speech get an empty transcript instead of Whisper's hallucinations
(Silero VAD, the model the reference uses; an energy gate only if ``silero-vad`` is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from toolkit.audio import SAMPLE_RATE
from toolkit.models.loading import check_model_path, weights_enabled
from toolkit.models.transcribers.base import TRANSCRIBERS, Transcriber

log = logging.getLogger(__name__)


@TRANSCRIBERS.register("whisper")
class WhisperTranscriber(Transcriber):
    """Batched Whisper ASR for clips that come without a transcript.

    Args:
        model_path: HF Whisper directory (``${cache:}/models/whisper-tiny.en``) or hub id.
        language: language token for multilingual models (ignored by ``.en`` models).
        batch_size: clips per Whisper ``generate`` call.
        max_new_tokens: transcript budget per 30 s window.
        vad: give non-speech clips an empty transcript.
        device: where Whisper runs (``cpu``, ``cuda``); it loads on first use.
    """

    def __init__(self, model_path: str | None = None, language: str | None = "en", batch_size: int = 16,
                 max_new_tokens: int = 128, vad: bool = False, device: str = "cpu"):
        self.model_path = model_path
        self.language, self.batch_size, self.max_new_tokens = language, batch_size, max_new_tokens
        self.vad, self.device = vad, device
        self._model = None
        self._processor = None
        self._vad_model = None

    def to(self, device) -> "WhisperTranscriber":
        self.device = str(device)
        if self._model is not None:
            self._model.to(self.device)
        return self

    def _load(self) -> None:
        if self._model is not None:
            return
        if not weights_enabled():
            raise RuntimeError("the whisper transcriber cannot run inside skip_weights()")
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        path = check_model_path(self.model_path, "transcriber")
        self._processor = WhisperProcessor.from_pretrained(path)
        self._model = WhisperForConditionalGeneration.from_pretrained(path).to(self.device).eval()

    def _is_speech(self, wave: np.ndarray) -> bool:
        threads = torch.get_num_threads()
        try:
            from silero_vad import get_speech_timestamps, load_silero_vad
        except ImportError:
            # Energy gate (stated as such): speech has frames well above the clip's noise floor.
            frames = wave[: len(wave) // 400 * 400].reshape(-1, 400)
            if len(frames) == 0:
                return False
            energy = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-10)
            return bool(energy.max() > -45 and energy.max() - np.percentile(energy, 10) > 15)
        finally:
            torch.set_num_threads(threads)  # importing silero_vad sets 1 thread for the whole process
        if self._vad_model is None:
            self._vad_model = load_silero_vad()
        return bool(get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wave)), self._vad_model,
                                          sampling_rate=SAMPLE_RATE))

    @torch.no_grad()
    def _asr(self, waves: list[np.ndarray]) -> list[str]:
        self._load()
        out = []
        for i in range(0, len(waves), self.batch_size):
            chunk = waves[i : i + self.batch_size]
            long_form = any(len(w) > 30 * SAMPLE_RATE for w in chunk)
            inputs = self._processor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                     **({"truncation": False, "padding": "longest", "return_attention_mask": True} if long_form else {}))
            kwargs = {"max_new_tokens": self.max_new_tokens}
            if getattr(self._model.generation_config, "is_multilingual", False) and self.language:
                kwargs.update(language=self.language, task="transcribe")
            if long_form:  # Whisper's sequential long-form decoding: nothing past 30 s is cut
                kwargs.update(attention_mask=inputs["attention_mask"].to(self.device), return_timestamps=True)
            ids = self._model.generate(inputs["input_features"].to(self.device), **kwargs)
            out += [t.strip() for t in self._processor.batch_decode(ids, skip_special_tokens=True)]
        return out

    def transcribe(self, waveforms: Sequence[np.ndarray], given: Sequence[str | None]) -> list[str]:
        result: list[str | None] = [g if g is not None else None for g in given]
        todo = [i for i, g in enumerate(given) if g is None]
        if self.vad:
            speech = {i for i in todo if self._is_speech(np.asarray(waveforms[i], dtype=np.float32))}
            for i in todo:
                if i not in speech:
                    result[i] = ""
            todo = [i for i in todo if i in speech]
        if todo:
            for i, text in zip(todo, self._asr([np.asarray(waveforms[i], dtype=np.float32) for i in todo])):
                result[i] = text
        return [r or "" for r in result]
