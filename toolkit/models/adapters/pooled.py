"""Mean-pooled linear adapter: each tapped layer normalised, averaged over the clip, one linear map to N vectors.

s3prl's utterance-level downstream (layer-normalised states, mean over time, a linear layer) read as an
LLM connector: the concatenated per-layer means are mapped to ``num_vectors`` LLM-width vectors by one
``nn.Linear``. It keeps no time order, so it carries what a clip *is* (speaker, instrument, sound), not
what is said; DeSTA2.5 gives the LLM the words through the transcript spliced after the audio.

Why it exists beside the Q-Former: on the embedded mini corpus (Whisper tiny.en, SmolLM2-135M, 300 steps
on 2 CPU cores) the small Q-Former answers one label per task whatever the clip, while this adapter
learns to tell sounds apart in the same run (README "What to expect"). Whisper's tapped layers have
outlier channels two orders of magnitude above the rest, which would otherwise dominate the mean, so
each layer is normalised first, one of two ways (``normalize``):

- ``layer_norm``: each frame over its channels, without learned scale (s3prl's
  ``Featurizer(normalize=True)``). Needs no statistics, but the outliers set every frame's scale.
- ``global``: each channel by its mean and variance over every valid training frame seen so far
  (SpeechBrain's ``InputNormalization(norm_type="global")``; ESPnet's ``global_mvn`` with the
  statistics gathered during training instead of a stats stage). The statistics are buffers, saved
  with the trained weights; in eval mode they are fixed. Each channel reaches the linear map at unit
  scale, so no channel learns slower under Adam because its values are small.

Its weight count is ``num_inputs * input_size * num_vectors * output_size``: 14 M for the mini recipe,
1.3 G for Whisper-large-v3 into a 4096-wide LLM, so it is a small-scale and ablation adapter.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from toolkit.models.adapters.base import ADAPTERS, AudioAdapter, zero_padding


@ADAPTERS.register("pooled")
class PooledAdapter(AudioAdapter):
    """Per-layer LayerNorm -> mean over valid frames -> concatenate layers -> Linear -> ``num_vectors`` vectors.

    Args (the first three come from the build code):
        input_size: encoder width.
        num_inputs: number of tapped encoder layers.
        output_size: LLM hidden size.
        num_vectors: audio vectors per clip, whatever its duration.
        output_scale: the norm of one output vector at initialisation, for unit-variance inputs; set it near the
            LLM's token-embedding norm (SmolLM2-135M: 3.2) so the audio vectors start where the LLM's inputs live.
        normalize: ``layer_norm`` (per frame) or ``global`` (per channel, statistics of the training frames).
    """

    NORMALIZE = ("layer_norm", "global")

    def __init__(self, input_size: int, num_inputs: int, output_size: int, num_vectors: int = 16,
                 output_scale: float = 1.0, normalize: str = "layer_norm"):
        super().__init__()
        if num_vectors < 1:
            raise ValueError(f"adapter pooled: num_vectors={num_vectors} must be >= 1")
        if normalize not in self.NORMALIZE:
            raise ValueError(f"adapter pooled: normalize={normalize!r} is not one of {list(self.NORMALIZE)}; "
                             f"set adapter.normalize to one of them")
        self.normalize = normalize
        if normalize == "global":
            # float64 sums: a long run adds up millions of frames
            self.register_buffer("frames_seen", torch.zeros((), dtype=torch.float64))
            self.register_buffer("channel_mean", torch.zeros(num_inputs, input_size, dtype=torch.float64))
            self.register_buffer("channel_var", torch.ones(num_inputs, input_size, dtype=torch.float64))
        self.input_size, self.num_inputs, self.output_size = input_size, num_inputs, output_size
        self.count = num_vectors
        self.proj = nn.Linear(num_inputs * input_size, num_vectors * output_size)
        # Each output element ~ N(0, output_scale^2 / output_size) for unit-variance inputs: vectors of norm ~output_scale.
        fan_in = num_inputs * input_size
        nn.init.normal_(self.proj.weight, std=float(output_scale) / math.sqrt(output_size * fan_in))
        nn.init.zeros_(self.proj.bias)

    def num_vectors(self, num_frames: int) -> int:
        """Always ``num_vectors``: the clip is pooled whatever its length."""
        return self.count

    @torch.no_grad()
    def _update_statistics(self, sums: torch.Tensor, squares: torch.Tensor, count: torch.Tensor) -> None:
        """Fold one batch's per-channel frame sums into the running mean and variance (Chan et al.'s merge)."""
        if count <= 0:
            return
        seen = self.frames_seen
        total = seen + count
        batch_mean = sums / count
        batch_var = (squares / count - batch_mean ** 2).clamp(min=0)
        delta = batch_mean - self.channel_mean
        mean = self.channel_mean + delta * (count / total)
        var = (self.channel_var * seen + batch_var * count + delta ** 2 * (seen * count / total)) / total
        self.channel_mean.copy_(mean)
        self.channel_var.copy_(var)
        self.frames_seen.copy_(total)

    def forward(self, hidden_states: list[torch.Tensor], lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self.proj.weight.dtype
        frames = lengths.to(hidden_states[0].device).clamp(min=1)[:, None]
        if self.normalize == "layer_norm":
            # padding frames are zeroed after the norm, so they never count in the mean
            pooled = [zero_padding(nn.functional.layer_norm(h.to(dtype), (h.shape[-1],)), lengths).sum(1) / frames.to(dtype)
                      for h in hidden_states]
        else:
            # the mean is linear: normalising each frame then pooling equals pooling then normalising
            sums = torch.stack([zero_padding(h.double(), lengths).sum(1) for h in hidden_states], dim=1)  # (B, L, d)
            if self.training:
                squares = torch.stack([zero_padding(h.double() ** 2, lengths).sum((0, 1)) for h in hidden_states])
                self._update_statistics(sums.sum(0), squares, lengths.clamp(min=0).sum().double())
            means = sums / frames.double()[:, :, None]
            normed = (means - self.channel_mean) / torch.sqrt(self.channel_var + 1e-5)
            pooled = list(normed.to(dtype).unbind(1))
        x = self.proj(torch.cat(pooled, dim=-1))
        batch = x.shape[0]
        return x.view(batch, self.count, self.output_size), torch.full((batch,), self.count, dtype=torch.long, device=x.device)
