"""Audio -> LLM-width vectors: the one encode path, and the declared count of vectors per clip.

``LALM`` (training, ``generate``) and the vLLM plugin both encode through :func:`encode_audio` and
:func:`encode_waveforms`, and both count through the encoder's ``num_frames`` and the adapter's
``num_vectors``: the count is declared by the components, never measured by running them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from toolkit.audio import SAMPLE_RATE
from toolkit.models.adapters.base import AudioAdapter
from toolkit.models.encoders.base import AudioEncoder, EncoderOutput


def _weightless(module: nn.Module) -> nn.Module:
    """A shallow copy of ``module`` without its parameters, buffers and submodules (its plain attributes kept)."""
    shell = copy.copy(module)
    shell._parameters, shell._buffers, shell._modules = {}, {}, {}
    return shell


class AudioVectorCount:
    """``num_samples -> audio vectors`` of one clip: ``adapter.num_vectors(encoder.num_frames(num_samples))``.

    Data loader workers need the count to cut an over-long response before the encoder runs; the
    counts read plain attributes only, so this object holds weightless copies of the two modules
    and pickles in a few kilobytes whatever the model's size.
    """

    def __init__(self, encoder: AudioEncoder, adapter: AudioAdapter):
        self.encoder, self.adapter = _weightless(encoder), _weightless(adapter)

    def __call__(self, num_samples: int) -> int:
        return int(self.adapter.num_vectors(int(self.encoder.num_frames(int(num_samples)))))

    def seconds(self, seconds: float) -> int:
        """The count for a clip known by its duration (rows and utt2dur give seconds)."""
        return self(round(float(seconds) * SAMPLE_RATE))


def encode_audio(
    encoder: AudioEncoder,
    adapter: AudioAdapter,
    features: dict[str, torch.Tensor] | None = None,
    encoder_output: EncoderOutput | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio vectors (A, N, H) and their counts (A,) for a flat batch of A audios.

    Pass either encoder inputs (``features`` from the encoder's feature extractor) or encoder states
    (``encoder_output``, e.g. from the feature cache). The adapter runs in its own dtype.
    """
    if encoder_output is None:
        if features is None:
            raise ValueError("encode_audio needs features or encoder_output")
        encoder_output = encoder(**features)
    adapter_dtype = next(adapter.parameters()).dtype
    states = [h.to(adapter_dtype) for h in encoder_output.hidden_states]
    return adapter(states, encoder_output.lengths)


def encode_waveforms(encoder: AudioEncoder, adapter: AudioAdapter, waves: Sequence[np.ndarray],
                     chunk_size: int = 4) -> list[torch.Tensor]:
    """Each clip's audio vectors (``(n_k, H)``, on the adapter's device), encoded in duration-sorted chunks.

    The encoder pads a batch to its longest clip, so one short clip beside a long one costs the
    long one's attention; sorted chunks of similar length avoid that (outputs are unchanged up to
    float rounding: the encoders and adapters are padding-invariant, which the tests check).
    ``chunk_size=1`` encodes every clip on its own.
    """
    fx = encoder.feature_extractor()
    device = next(adapter.parameters()).device
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    vectors: list[torch.Tensor | None] = [None] * len(waves)
    for start in range(0, len(order), chunk_size):
        idx = order[start : start + chunk_size]
        feats = {k: v.to(device) for k, v in fx([waves[i] for i in idx]).items()}
        embeds, lengths = encode_audio(encoder, adapter, feats)
        for row, i in enumerate(idx):
            vectors[i] = embeds[row, : int(lengths[row])]
    return vectors
