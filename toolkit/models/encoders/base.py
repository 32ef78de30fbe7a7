"""What every audio encoder returns and promises (the s3prl-style upstream contract)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from toolkit.audio import SAMPLE_RATE
from toolkit.registry import Registry


@dataclass
class EncoderOutput:
    """Hidden states after each tapped layer, all (batch, frames, output_size), and valid frame counts."""

    hidden_states: list[torch.Tensor]
    lengths: torch.Tensor  # (batch,) long


class AudioEncoder(nn.Module, metaclass=abc.ABCMeta):
    """A frozen (by default) speech/audio encoder that exposes several intermediate layers.

    Subclasses set ``output_size`` (width of each tapped state), ``num_tapped`` (how many states
    ``forward`` returns), ``frame_rate`` (hidden-state frames per second) and, for a Transformer,
    ``num_heads`` (its attention heads: attention adapters default to it), and implement:

    - ``feature_extractor()``: a picklable callable ``list[np.ndarray] -> dict[str, Tensor]``
      (16 kHz mono waveforms in, padded model inputs out, always with ``feature_lengths``) that data
      loader workers run, so featurising never blocks the training step;
    - ``forward(**features) -> EncoderOutput``;
    - ``num_frames(num_samples)``: the frame count ``forward`` returns for one clip of that many
      samples, computed from the configuration alone (the data loader needs it before the encoder
      runs, the vLLM plugin before it builds the model). It reads plain attributes only, never a
      submodule or a tensor, so a weightless copy (:class:`toolkit.models.audio_vectors.AudioVectorCount`)
      can carry it into data loader workers.
    """

    sample_rate: int = SAMPLE_RATE
    output_size: int
    num_tapped: int
    frame_rate: float
    num_heads: int | None = None

    frozen: bool = True

    def train(self, mode: bool = True) -> "AudioEncoder":
        """A frozen encoder stays in eval mode (dropout off) whatever the trainer asks."""
        return super().train(mode and not self.frozen)

    @classmethod
    def max_input_seconds(cls, config: dict[str, Any]) -> float | None:
        """The longest clip this encoder takes when built from ``config`` (its YAML node), None: no limit.

        Read from the config alone, so a server can clamp its audio limit before loading any weights.
        """
        return None

    @abc.abstractmethod
    def feature_extractor(self) -> Any:
        ...

    @abc.abstractmethod
    def num_frames(self, num_samples: int) -> int:  # pragma: no cover
        """Valid frames (``EncoderOutput.lengths``) of a clip of ``num_samples`` 16 kHz samples."""
        ...

    @abc.abstractmethod
    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> EncoderOutput:  # pragma: no cover
        ...

    def encode_waveforms(self, waveforms: list[np.ndarray]) -> EncoderOutput:
        """Convenience: featurise on the fly and run ``forward`` on the encoder's device."""
        device = next(self.parameters()).device
        feats = {k: v.to(device) for k, v in self.feature_extractor()(waveforms).items()}
        return self(**feats)


ENCODERS = Registry("encoder", base=AudioEncoder, variable="ENCODERS", components="toolkit.models.encoders")
