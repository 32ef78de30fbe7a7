"""SALMONN-style window-level Q-Former: a few queries per short window, tokens grow with duration.

The tapped layers are fused by a learned softmax-weighted sum (zero-initialised, as in
:mod:`toolkit.models.adapters.mlp`), the frames are cut into fixed windows of ``window_size``
frames (17 frames = 0.34 s at 50 Hz, SALMONN's choice), and one shared BERT-style Q-Former
(:class:`toolkit.models.adapters.qformer.QFormerEncoder`) lets ``queries_per_window`` learnable
queries attend to each window alone.  ``LayerNorm + Linear`` map the results to the LLM width.
A 30 s clip gives 89 windows, i.e. 89 audio vectors with one query per window.

Windows start at frame 0 of every clip, a clip's last window masks the frames past its length,
and windows wholly past it are not computed (their outputs are zeros beyond ``audio_lengths``),
so a clip's vectors are the same alone and in a padded batch.
"""

from __future__ import annotations

import torch
from torch import nn

from toolkit.models.adapters.base import ADAPTERS, AudioAdapter, default_num_heads, zero_padding
from toolkit.models.adapters.mlp import fuse_layers
from toolkit.models.adapters.qformer import QFormerEncoder, key_padding_bias


@ADAPTERS.register("window_qformer")
class WindowQFormerAdapter(AudioAdapter):
    """Weighted layer sum -> windows of ``window_size`` frames -> Q-Former -> LayerNorm + Linear.

    Args (the first three come from the build code):
        input_size: encoder width.
        num_inputs: number of tapped encoder layers.
        output_size: LLM hidden size.
        window_size: encoder frames per window (17 ~ 0.33 s at 50 Hz).
        queries_per_window: audio vectors per window (SALMONN: 1).
        num_layers: Q-Former depth (SALMONN: 2).
        hidden_size: Q-Former width; default ``input_size``.
        num_heads: default the encoder's head count (``input_heads``), else ``hidden_size // 64``.
        intermediate_size: feed-forward width; default ``4 * hidden_size``.
        dropout, layer_norm_eps: as BERT (0.1, 1e-12).
        input_heads: the encoder's attention heads (from the build code).
    """

    def __init__(
        self,
        input_size: int,
        num_inputs: int,
        output_size: int,
        window_size: int = 17,
        queries_per_window: int = 1,
        num_layers: int = 2,
        hidden_size: int | None = None,
        num_heads: int | None = None,
        intermediate_size: int | None = None,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        input_heads: int | None = None,
    ):
        super().__init__()
        if window_size < 1 or queries_per_window < 1:
            raise ValueError(f"adapter window_qformer: window_size={window_size} and queries_per_window={queries_per_window} must be >= 1")
        hidden_size = input_size if hidden_size is None else hidden_size
        num_heads = default_num_heads(hidden_size, input_heads) if num_heads is None else num_heads
        self.num_heads = num_heads
        intermediate_size = 4 * hidden_size if intermediate_size is None else intermediate_size
        self.window_size = window_size
        self.queries_per_window = queries_per_window
        self.layer_weights = nn.Parameter(torch.zeros(num_inputs))
        self.queries = nn.Parameter(torch.randn(1, queries_per_window, hidden_size))
        self.qformer = QFormerEncoder(num_layers, hidden_size, num_heads, intermediate_size, input_size, dropout, layer_norm_eps)
        self.proj = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, output_size))

    def layer_weight_probs(self) -> torch.Tensor:
        """(L,) softmax weights over tapped layers (for plots)."""
        return self.layer_weights.detach().float().softmax(dim=-1)

    def num_vectors(self, num_frames: int) -> int:
        """``queries_per_window`` per window of ``window_size`` frames, the last partial window included."""
        return -(-int(num_frames) // self.window_size) * self.queries_per_window

    def forward(self, hidden_states: list[torch.Tensor], lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps = hidden_states[0].shape[1]
        lengths = lengths.to(hidden_states[0].device).clamp(max=steps)
        # Each state before the fusion (whose backward multiplies by every frame): a non-finite padded
        # frame must reach neither a window's vectors nor the layer weights' gradient.
        x = fuse_layers([zero_padding(h, lengths) for h in hidden_states], self.layer_weights)
        batch, _, width = x.shape
        num_windows = -(-steps // self.window_size)
        x = nn.functional.pad(x, (0, 0, 0, num_windows * self.window_size - steps))
        windows = x.reshape(batch * num_windows, self.window_size, width)
        starts = torch.arange(num_windows, device=x.device) * self.window_size
        valid_frames = (lengths[:, None] - starts[None, :]).clamp(min=0, max=self.window_size).reshape(-1)
        used = valid_frames > 0  # windows holding at least one frame of their clip
        bias = key_padding_bias(valid_frames[used], self.window_size, x.dtype)
        queries = self.queries.expand(int(used.sum()), -1, -1)
        out = self.qformer(queries, windows[used], bias)
        full = out.new_zeros(batch * num_windows, self.queries_per_window, out.shape[-1])
        full[used] = out
        full = full.reshape(batch, num_windows * self.queries_per_window, -1)
        audio_lengths = (lengths + self.window_size - 1) // self.window_size * self.queries_per_window
        return self.proj(full), audio_lengths.long()
