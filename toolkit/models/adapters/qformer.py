"""DeSTA2.5's Q-Former connector: per-layer learnable queries, one shared BERT-style encoder.

For each tapped encoder layer ``l`` a set of ``num_queries`` learnable queries runs through one
shared stack of BERT layers (self-attention among the queries, cross-attention to layer ``l``'s
frames, GELU feed-forward, post-LayerNorm).  The per-layer outputs are stacked to
``(B, Q, L, d)`` and fused with per-query softmax weights over layers (a ``(Q, L)`` parameter
initialised to zeros, i.e. a plain average at the start), then ``LayerNorm + Linear`` map to the
LLM width.  Every clip gives exactly ``num_queries`` audio vectors.

The BERT stack is written here rather than taken from ``transformers.BertEncoder``: in
transformers 5.x cross-attention requires ``is_decoder=True``, which makes the query
self-attention causal under SDPA, while the reference (eager attention, no mask) lets queries see
each other.  Module names follow BERT's, so the official checkpoint's keys
(``perception.connector.qformer.layer.N.attention.self.query`` ...) map one to one
(:mod:`toolkit.models.official`).  Weights keep PyTorch's default init (the reference never calls
BERT's ``post_init``); queries are ``randn``, layer weights zeros, as in the reference.

Cross-attention ignores encoder frames past each clip's length (masked as keys and zeroed, so
even a NaN a kernel left there cannot reach the clip); when every frame is valid (the
reference-compatible 3000-frame input) no mask is built and the computation is the reference's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from toolkit.models.adapters.base import ADAPTERS, AudioAdapter, default_num_heads, zero_padding


def key_padding_bias(lengths: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive (B, 1, 1, T) attention bias hiding keys past ``lengths``; None when all are valid."""
    if bool((lengths >= steps).all()):
        return None
    valid = torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]
    bias = torch.zeros(valid.shape, dtype=dtype, device=lengths.device).masked_fill(~valid, torch.finfo(dtype).min)
    return bias[:, None, None, :]


class QFormerSelfAttention(nn.Module):
    """Multi-head attention projections named as BERT's (``query``, ``key``, ``value``)."""

    def __init__(self, hidden_size: int, num_heads: int, key_size: int, dropout: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"adapter: hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(key_size, hidden_size)
        self.value = nn.Linear(key_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:2], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        query = self.split_heads(self.query(hidden))
        key = self.split_heads(self.key(context))
        value = self.split_heads(self.value(context))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_dim)  # eager, as the reference
        if bias is not None:
            scores = scores + bias
        probs = self.dropout(scores.softmax(dim=-1))
        out = torch.matmul(probs, value).transpose(1, 2)
        return out.reshape(*out.shape[:2], -1)


class QFormerResidual(nn.Module):
    """BERT's ``*Output`` block: dense -> dropout -> LayerNorm(x + residual)."""

    def __init__(self, in_size: int, hidden_size: int, dropout: float, eps: float):
        super().__init__()
        self.dense = nn.Linear(in_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)  # BERT's name, kept for checkpoint keys
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class QFormerAttention(nn.Module):
    """``self`` (projections + attention) followed by ``output`` (dense + residual LayerNorm)."""

    def __init__(self, hidden_size: int, num_heads: int, key_size: int, dropout: float, eps: float):
        super().__init__()
        self.self = QFormerSelfAttention(hidden_size, num_heads, key_size, dropout)
        self.output = QFormerResidual(hidden_size, hidden_size, dropout, eps)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden, context, bias), hidden)


class QFormerIntermediate(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))  # exact (erf) GELU, BERT's "gelu"


class QFormerLayer(nn.Module):
    """Self-attention over the queries, cross-attention to the audio frames, feed-forward."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, context_size: int, dropout: float, eps: float):
        super().__init__()
        self.attention = QFormerAttention(hidden_size, num_heads, hidden_size, dropout, eps)
        self.crossattention = QFormerAttention(hidden_size, num_heads, context_size, dropout, eps)
        self.intermediate = QFormerIntermediate(hidden_size, intermediate_size)
        self.output = QFormerResidual(intermediate_size, hidden_size, dropout, eps)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, context_bias: torch.Tensor | None) -> torch.Tensor:
        hidden = self.attention(queries, queries, None)
        hidden = self.crossattention(hidden, context, context_bias)
        return self.output(self.intermediate(hidden), hidden)


class QFormerEncoder(nn.Module):
    """A stack of :class:`QFormerLayer` (BERT's ``encoder.layer.N``)."""

    def __init__(
        self,
        num_layers: int,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        context_size: int,
        dropout: float,
        eps: float,
    ):
        super().__init__()
        self.layer = nn.ModuleList(
            [QFormerLayer(hidden_size, num_heads, intermediate_size, context_size, dropout, eps) for _ in range(num_layers)]
        )

    def forward(self, queries: torch.Tensor, context: torch.Tensor, context_bias: torch.Tensor | None = None) -> torch.Tensor:
        hidden = queries
        for layer in self.layer:
            hidden = layer(hidden, context, context_bias)
        return hidden


@ADAPTERS.register("qformer")
class QFormerAdapter(AudioAdapter):
    """DeSTA2.5's connector (see module docstring).

    Args (the first three come from the build code):
        input_size: encoder width (Whisper-large-v3: 1280).
        num_inputs: number of tapped encoder layers (4).
        output_size: LLM hidden size (Llama-3.1-8B: 4096).
        num_layers: Q-Former depth (DeSTA2.5: 6).
        num_queries: learnable queries per tapped layer = audio vectors per clip (64).
        hidden_size: Q-Former width; default ``input_size``, as the reference.
        num_heads: attention heads; default the encoder's own head count (``input_heads``), as the
            reference builds it (large-v3: 20), or ``hidden_size // 64`` when that does not divide the width.
        intermediate_size: feed-forward width (BERT's 3072).
        dropout: hidden and attention-probability dropout (0.1).
        layer_norm_eps: 1e-12 (BERT).
        input_heads: the encoder's attention heads (from the build code; see ``default_num_heads``).
    """

    def __init__(
        self,
        input_size: int,
        num_inputs: int,
        output_size: int,
        num_layers: int = 6,
        num_queries: int = 64,
        hidden_size: int | None = None,
        num_heads: int | None = None,
        intermediate_size: int = 3072,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        input_heads: int | None = None,
    ):
        super().__init__()
        hidden_size = input_size if hidden_size is None else hidden_size
        num_heads = default_num_heads(hidden_size, input_heads) if num_heads is None else num_heads
        self.num_heads = num_heads
        self.num_queries = num_queries
        self.num_inputs = num_inputs
        self.layer_prompts = nn.ParameterList([nn.Parameter(torch.randn(1, num_queries, hidden_size)) for _ in range(num_inputs)])
        self.layer_weights = nn.Parameter(torch.zeros(num_queries, num_inputs))
        self.qformer = QFormerEncoder(num_layers, hidden_size, num_heads, intermediate_size, input_size, dropout, layer_norm_eps)
        self.proj = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, output_size))

    def layer_weight_probs(self) -> torch.Tensor:
        """(Q, L) softmax weights over tapped layers, one row per query (for plots)."""
        return self.layer_weights.detach().float().softmax(dim=-1)

    def num_vectors(self, num_frames: int) -> int:
        """``num_queries`` whatever the clip's length."""
        return self.num_queries

    def forward(self, hidden_states: list[torch.Tensor], lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(hidden_states) != self.num_inputs:
            raise ValueError(f"adapter qformer: built for {self.num_inputs} tapped layers, got {len(hidden_states)}")
        batch, steps = hidden_states[0].shape[:2]
        dtype = self.layer_weights.dtype
        lengths = lengths.to(hidden_states[0].device)
        bias = key_padding_bias(lengths, steps, dtype)
        if bias is not None:  # the bias hides padded keys, but a non-finite value there would still spread
            hidden_states = [zero_padding(states, lengths) for states in hidden_states]
        per_layer = [
            self.qformer(prompt.expand(batch, -1, -1), states.to(dtype), bias)
            for prompt, states in zip(self.layer_prompts, hidden_states)
        ]
        stacked = torch.stack(per_layer, dim=2)  # (B, Q, L, d)
        weights = self.layer_weights.softmax(dim=-1).unsqueeze(-1)  # (Q, L, 1)
        fused = (stacked * weights).sum(dim=2)
        audio = self.proj(fused)
        return audio, torch.full((batch,), self.num_queries, dtype=torch.long, device=audio.device)
