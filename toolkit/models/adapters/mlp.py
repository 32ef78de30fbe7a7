"""LLaVA-style MLP projector over stacked frames: the simplest adapter, tokens grow with duration.

The tapped layers are fused by a learned softmax-weighted sum (one zero-initialised weight per
layer, s3prl's ``Featurizer``: a plain average at the start, free to prefer layers later), then
``stack_frames`` consecutive frames are concatenated (50 Hz / 4 = 12.5 audio vectors per second,
375 for 30 s) and a two-layer MLP with GELU maps them to the LLM width.

Frames past a clip's length are zeroed before stacking, so the last, partial group of a clip sees
the same zeros alone and beside a longer clip; ``audio_lengths = ceil(lengths / stack_frames)``.
"""

from __future__ import annotations

import torch
from torch import nn

from toolkit.models.adapters.base import ADAPTERS, AudioAdapter, zero_padding


def fuse_layers(hidden_states: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Softmax(weights)-weighted sum of same-shape (B, T, d) states."""
    probs = weights.softmax(dim=-1)
    return (torch.stack(hidden_states, dim=-1).to(weights.dtype) * probs).sum(dim=-1)


@ADAPTERS.register("mlp")
class MLPAdapter(AudioAdapter):
    """Weighted layer sum -> stack ``stack_frames`` frames -> Linear -> GELU -> Linear.

    Args (the first three come from the build code):
        input_size: encoder width.
        num_inputs: number of tapped encoder layers.
        output_size: LLM hidden size.
        stack_frames: consecutive encoder frames per audio vector (4: 80 ms at 50 Hz).
        hidden_size: MLP hidden width; default ``output_size`` (LLaVA-1.5's projector).
    """

    def __init__(self, input_size: int, num_inputs: int, output_size: int, stack_frames: int = 4, hidden_size: int | None = None):
        super().__init__()
        if stack_frames < 1:
            raise ValueError(f"adapter mlp: stack_frames={stack_frames} must be >= 1")
        hidden_size = output_size if hidden_size is None else hidden_size
        self.stack_frames = stack_frames
        self.layer_weights = nn.Parameter(torch.zeros(num_inputs))
        self.mlp = nn.Sequential(nn.Linear(input_size * stack_frames, hidden_size), nn.GELU(), nn.Linear(hidden_size, output_size))

    def layer_weight_probs(self) -> torch.Tensor:
        """(L,) softmax weights over tapped layers (for plots)."""
        return self.layer_weights.detach().float().softmax(dim=-1)

    def num_vectors(self, num_frames: int) -> int:
        """One vector per ``stack_frames`` frames, the last partial group included."""
        return -(-int(num_frames) // self.stack_frames)

    def forward(self, hidden_states: list[torch.Tensor], lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Each state before the fusion: its backward multiplies the layer weights' gradient by every frame.
        x = fuse_layers([zero_padding(h, lengths) for h in hidden_states], self.layer_weights)
        batch, steps, width = x.shape
        groups = -(-steps // self.stack_frames)
        x = nn.functional.pad(x, (0, 0, 0, groups * self.stack_frames - steps))
        x = x.reshape(batch, groups, self.stack_frames * width)
        audio_lengths = (lengths.to(x.device) + self.stack_frames - 1) // self.stack_frames
        return self.mlp(x), audio_lengths.long()
