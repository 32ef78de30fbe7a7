"""Sequence packing: several training rows in one LLM sequence, with no attention between rows.

Why: a padded batch spends LLM compute on pad positions, and many short rows make many small
matmuls.  Packing lays the rows of a batch end to end in a few sequences of at most ``capacity``
positions (first-fit decreasing), restarts ``position_ids`` at 0 for every row and lets each
position attend only to earlier positions of its own row, so each row's hidden states, and
hence the loss, equal the unpacked ones up to float rounding (``test/test_train_packing.py``).

The attention restriction reaches the LLM in the form its attention implementation takes:

- ``eager``: an additive ``(P, 1, T, T)`` float mask (0 allowed, dtype minimum elsewhere);
- ``sdpa``: the same block-diagonal causal mask as booleans;
- ``flash_attention_2`` / ``flash_attention_3`` (GPU): no mask at all; transformers reads the row
  boundaries from the restarted ``position_ids`` and calls the variable-length kernel, which
  never computes the masked blocks;
- ``flex_attention``: no mask either; transformers finds the rows from the restarted
  ``position_ids`` and builds a block-sparse ``BlockMask``, so whole blocks between rows are
  skipped.  It needs no extra package (PyTorch + Triton), which makes it the packed path on a GPU
  without flash-attn.  PyTorch runs its backward on GPUs only: on a CPU it serves forward passes.

Pad positions at the end of a packed sequence form one more block of their own (positions
restarted too), so no softmax row is empty and no real position attends to them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Attention implementations that take packed rows from the restarted position ids alone (no mask).
POSITION_PACKED_IMPLEMENTATIONS = frozenset({"flash_attention_2", "flash_attention_3", "flex_attention"})


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Row indices grouped into bins of at most ``capacity`` positions (first-fit decreasing).

    A row longer than ``capacity`` gets a bin of its own.  Within a bin rows keep their input
    order, so the layout is deterministic.
    """
    if capacity < 1:
        raise ValueError(f"packing capacity must be >= 1, got {capacity}")
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return [sorted(b) for b in bins]


def packed_positions(segment_lengths: Sequence[Sequence[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``position_ids`` and segment ids ``(P, width)`` for packed sequences of the given row lengths.

    Positions restart at 0 for every row and for the trailing pad block; segment ids number the
    rows of a sequence 0, 1, ... and the pad block gets the next number.
    """
    positions = torch.zeros(len(segment_lengths), width, dtype=torch.long)
    segments = torch.zeros(len(segment_lengths), width, dtype=torch.long)
    for p, lens in enumerate(segment_lengths):
        start = 0
        for s, n in enumerate([*lens, width - sum(lens)]):
            if n <= 0:
                continue
            positions[p, start : start + n] = torch.arange(n)
            segments[p, start : start + n] = s
            start += n
    return positions, segments


def block_causal_mask(segments: torch.Tensor, implementation: str, dtype: torch.dtype) -> torch.Tensor | None:
    """The ``attention_mask`` to pass the LLM for packed ``segments`` (None: the position-packed kinds need none)."""
    if implementation in POSITION_PACKED_IMPLEMENTATIONS:
        return None
    width = segments.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    allowed = (segments[:, :, None] == segments[:, None, :]) & causal  # (P, T, T)
    allowed = allowed[:, None]
    if implementation == "sdpa":
        return allowed
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)
