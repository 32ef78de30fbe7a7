"""What every adapter (modality connector) takes and returns."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from toolkit.registry import Registry


def zero_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, d) with frames at or past ``lengths`` set to zero, whatever they held.

    A fill, not a multiply by the mask: a NaN or inf a kernel left in a padded frame (fused bf16
    attention kernels have done so) times zero is still NaN, and would then reach the clip's
    vectors through every sum or attention over the frames.
    """
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
    return x.masked_fill(~valid[:, :, None], 0)


class AudioAdapter(nn.Module, metaclass=abc.ABCMeta):
    """Maps an encoder's tapped hidden states to a sequence of LLM-width audio vectors.

    The build code passes ``input_size`` (encoder width), ``num_inputs`` (how many tapped layers)
    and ``output_size`` (LLM hidden size) as constructor arguments; YAML never repeats them.

    ``forward(hidden_states, lengths)`` takes the encoder's list of (B, T, input_size) states and
    their valid frame counts, and returns ``(audio_embeds (B, N, output_size), audio_lengths (B,))``:
    N is fixed for the Q-Former (64 by default) and grows with duration for frame-based adapters;
    vectors past ``audio_lengths[b]`` are padding and never reach the LLM.

    ``num_vectors(num_frames)`` declares ``audio_lengths`` for a clip of that many valid frames,
    from the configuration alone and reading plain attributes only (see ``AudioEncoder.num_frames``).

    An adapter with attention may also take ``input_heads`` (the encoder's attention-head count, or
    None when the encoder has none): :func:`adapter_runtime` passes it only to adapters that accept it.
    """

    @abc.abstractmethod
    def num_vectors(self, num_frames: int) -> int:  # pragma: no cover
        """Audio vectors (``audio_lengths``) ``forward`` makes of a clip with ``num_frames`` valid frames."""
        ...

    @abc.abstractmethod
    def forward(self, hidden_states: list[torch.Tensor], lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        ...


ADAPTERS = Registry("adapter", base=AudioAdapter, variable="ADAPTERS", components="toolkit.models.adapters")


RUNTIME_ARGUMENTS = frozenset({"input_size", "num_inputs", "output_size", "input_heads"})


def adapter_runtime(node: Mapping[str, Any], encoder: Any, output_size: int) -> dict[str, Any]:
    """The build-time arguments of the adapter in config ``node``, taken from the built encoder and the LLM width.

    ``input_heads`` goes only to adapters whose constructor names it, so attention-free adapters
    (``mlp``) keep a signature without it.
    """
    from toolkit.config import signature_keys

    runtime = {"input_size": encoder.output_size, "num_inputs": encoder.num_tapped, "output_size": output_size}
    if "input_heads" in signature_keys(ADAPTERS.get(node["name"]))[0]:
        runtime["input_heads"] = getattr(encoder, "num_heads", None)
    return runtime


def default_num_heads(hidden_size: int, input_heads: int | None) -> int:
    """The encoder's own head count (as DeSTA2.5 builds its Q-Former), else one head per 64 channels.

    Heads leave no trace in weight shapes, so a wrong default loads any checkpoint silently; the
    encoder's count is the only one that matches a model trained with the reference code. It is
    used whenever it divides the Q-Former width.
    """
    if input_heads and hidden_size % input_heads == 0:
        return int(input_heads)
    return max(1, hidden_size // 64)
