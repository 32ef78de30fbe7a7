"""What the vLLM plugin computes, without vLLM: prompt ids with audio placeholders, and the audio embeddings.

``model.py`` wraps these in vLLM's processor and model classes; everything here calls the functions
``LALM.generate`` itself uses, so the plugin builds what ``LALM`` builds:

- the tokenizer and formatter: ``load_tokenizer`` (as ``HFCausalLM``), ``ChatFormatter`` and
  ``placeholder_token_id`` (as ``LALM``);
- the prompt: vLLM hands over the prompt already tokenized as one string, while ``ChatFormatter``
  tokenizes the text between audios piece by piece and appends each transcript's own ids, which can
  differ from tokenizing the whole string. So :meth:`PromptProcessor.process` decodes the ids back
  to text (lossless for the byte-level BPE tokenizers we use) and runs ``ChatFormatter.encode_prompt``
  and ``TokenizedConversation.spliced``, as ``LALM.generate`` runs ``encode`` and ``assemble``;
- the number of placeholders per audio: the encoder's and adapter's declared counts
  (``AudioVectorCount``), so frame adapters (``mlp``, ``window_qformer``) are served as the Q-Former is;
- the audio vectors: ``encode_waveforms`` (each audio on its own, as ``generate`` encodes a single-audio request).

Transcripts come from ``mm_processor_kwargs={"transcripts": [...]}`` (None entries, or no key: the
export's transcriber decides, e.g. Whisper), as ``given`` texts do in ``generate``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.audio import SAMPLE_RATE
from toolkit.models.audio_vectors import AudioVectorCount, encode_waveforms
from toolkit.models.chat import AUDIO_TOKEN, build_formatter
from toolkit.serve.vllm_plugin.middleware import DEFAULT_MAX_AUDIO_SECONDS, ENV_MAX_AUDIO_SECONDS

PROFILE_SECONDS = 30.0  # the profiling clip when the vector count does not grow with duration


def load_export_config(export_dir: str | Path) -> dict[str, Any]:
    """The export's resolved ``config.yaml`` as plain containers."""
    from toolkit.config import load_config, to_container

    return to_container(load_config(Path(export_dir) / "config.yaml"))


def llm_hidden_size(cfg: Mapping[str, Any]) -> int:
    """The backbone's width, from its config alone (the adapter's output size)."""
    from toolkit.models.loading import resolve_config_dict

    arch = resolve_config_dict(str(cfg["llm"]["model_path"]), None, "llm")  # the directory vLLM loads
    text = arch.get("text_config") or arch
    return int(text.get("hidden_size") or text["n_embd"])


def audio_vector_count(cfg: Mapping[str, Any]) -> AudioVectorCount:
    """The export's declared audio vectors per clip, from its encoder and adapter built on the meta device."""
    from toolkit.models.adapters import ADAPTERS
    from toolkit.models.adapters.base import adapter_runtime
    from toolkit.models.encoders import ENCODERS
    from toolkit.models.loading import skip_weights

    with skip_weights():
        encoder = ENCODERS.build(cfg["encoder"], "encoder")
        runtime = adapter_runtime(cfg["adapter"], encoder, llm_hidden_size(cfg))
        adapter = ADAPTERS.build(cfg["adapter"], "adapter", **runtime)
    return AudioVectorCount(encoder, adapter)


def max_audio_seconds(cfg: Mapping[str, Any]) -> float:
    """The longest clip a request may bring: the server's limit (``python -m toolkit.bin.serve`` sets it for every
    vLLM process) or the encoder's, whichever is shorter, else the middleware's default."""
    from toolkit.models.encoders import ENCODERS

    encoder = cfg["encoder"]
    server = float(os.environ.get(ENV_MAX_AUDIO_SECONDS) or 0) or None  # 0: no limit
    limits = [x for x in (ENCODERS.get(encoder["name"]).max_input_seconds(encoder), server) if x is not None]
    return min(limits) if limits else DEFAULT_MAX_AUDIO_SECONDS


@dataclass
class ProcessedPrompt:
    """The processor's output for one request: prompt ids with every audio's placeholders, and where they are."""

    prompt_token_ids: list[int]
    placeholders: list[tuple[int, int]]  # (offset, length) per audio, in prompt order
    waveforms: list[np.ndarray]
    transcripts: list[str]


class PromptProcessor:
    """The export's prompt side: formatter, placeholder id, declared vector counts, transcriber (see the module)."""

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = dict(cfg)
        self.formatter, self.placeholder_id = build_formatter(self.cfg)
        self.vector_count = audio_vector_count(self.cfg)

    @cached_property
    def transcriber(self) -> Any:
        from toolkit.models.transcribers import TRANSCRIBERS

        return TRANSCRIBERS.build(self.cfg["transcriber"], "transcriber")

    @cached_property
    def longest_clip_samples(self) -> int:
        return int(max_audio_seconds(self.cfg) * SAMPLE_RATE)

    def max_vectors_per_audio(self) -> int:
        """Placeholders the longest accepted clip takes (vLLM reserves room for that many per audio)."""
        return self.vector_count(self.longest_clip_samples)

    def profile_seconds(self) -> float:
        """Length of vLLM's profiling clip: the longest accepted one when the count grows with duration."""
        grows = self.vector_count(self.longest_clip_samples) != self.vector_count(int(PROFILE_SECONDS * SAMPLE_RATE))
        return self.longest_clip_samples / SAMPLE_RATE if grows else PROFILE_SECONDS

    def process(self, prompt_ids: Sequence[int], waveforms: Sequence[np.ndarray],
                transcripts: Sequence[str | None] | None = None) -> ProcessedPrompt:
        """Prompt ids (as vLLM tokenized the rendered prompt) + the request's audios -> ids with audio placeholders."""
        formatter = self.formatter
        text = formatter.tokenizer.decode(list(prompt_ids), skip_special_tokens=False,
                                          clean_up_tokenization_spaces=False)
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
        n_audios = text.count(AUDIO_TOKEN)
        if len(waves) != n_audios:
            raise ValueError(f"the prompt has {n_audios} {AUDIO_TOKEN} placeholder(s) but {len(waves)} audio(s) were "
                             f"given; put one {AUDIO_TOKEN} in the text where each audio goes")
        given = list(transcripts or [None] * n_audios)
        if len(given) != n_audios:
            raise ValueError(f"mm_processor_kwargs.transcripts has {len(given)} entries for {n_audios} audios")
        # Given transcripts (the decode stage, our server's middleware) skip loading the ASR model here.
        texts = list(given) if all(t is not None for t in given) else self.transcriber.transcribe(waves, given)
        conv = formatter.encode_prompt(text, texts)
        counts = [self.vector_count(len(w)) for w in waves]
        ids, _, offsets = conv.spliced(counts, self.placeholder_id)
        return ProcessedPrompt(ids, list(zip(offsets, counts)), waves, list(texts))


@torch.no_grad()
def embed_audios(encoder: Any, adapter: Any, waveforms: Sequence[np.ndarray], dtype: torch.dtype) -> list[torch.Tensor]:
    """Each audio's vectors in the LLM's dtype, each audio encoded on its own (what the model hands vLLM)."""
    return [v.to(dtype) for v in encode_waveforms(encoder, adapter, waveforms, chunk_size=1)]
