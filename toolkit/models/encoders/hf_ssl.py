"""Self-supervised speech encoders from HF transformers: WavLM, HuBERT, wav2vec 2.0.

All three share one body (:class:`HFSSLEncoder`): a convolutional feature encoder on the raw
16 kHz waveform (stride 320 samples -> 50 frames/s), a projection, and a Transformer whose layer
outputs we tap with forward hooks.  Tap ``i`` is the output of Transformer layer ``i`` (0-based),
before any final encoder LayerNorm of the "stable layer norm" variants, the same convention as
the Whisper encoder.  Layers after the last tap are dropped, so they cost nothing.

Padding invariance.  The base models (``feat_extract_norm == "group"``) normalise the first
convolution's output over time, so zero padding changes every frame of a shorter clip; HF's
advice for them is "pad with zeros and pass no attention mask", which makes a clip encode
differently beside a longer one.  We instead run the (cheap) convolutional stack once per clip
on its own samples, then batch the Transformer with a key-padding mask: every clip encodes
exactly as it would alone.  Models with ``feat_extract_norm == "layer"`` run the convolutions
batched (their frames only see their own samples).

The three names register three thin subclasses that only pick the HF model and config classes.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import (
    HubertConfig,
    HubertModel,
    PretrainedConfig,
    PreTrainedModel,
    Wav2Vec2Config,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)

from toolkit.models.encoders.base import ENCODERS, AudioEncoder, EncoderOutput
from toolkit.models.loading import check_model_path, resolve_config_dict, weights_enabled

MIN_SAMPLES = 400  # receptive field of the conv stack (25 ms): shorter clips are zero-padded to it


def evenly_spaced_layers(num_layers: int, count: int = 4) -> list[int]:
    """``count`` taps spread over the layers, the last one included (12 layers -> [2, 5, 8, 11])."""
    if num_layers <= count:
        return list(range(num_layers))
    return [math.ceil(num_layers * (k + 1) / count) - 1 for k in range(count)]


class WaveformFeatures:
    """Picklable featuriser: waveforms -> zero-padded (B, samples) float32 plus sample counts.

    ``normalize``: zero mean / unit variance per clip over its own samples (HF's
    ``Wav2Vec2FeatureExtractor(do_normalize=True)``), which the large checkpoints expect.
    """

    def __init__(self, normalize: bool):
        self.normalize = normalize

    def __call__(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        clips = []
        for wav in waveforms:
            wav = np.asarray(wav, dtype=np.float32).reshape(-1)
            if wav.size == 0:
                raise ValueError("ssl encoder: got an empty waveform; check the audio file (utt2dur should be > 0)")
            if self.normalize:
                wav = (wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)
            if wav.size < MIN_SAMPLES:
                wav = np.pad(wav, (0, MIN_SAMPLES - wav.size))
            clips.append(wav)
        lengths = [c.size for c in clips]
        batch = np.zeros((len(clips), max(lengths)), dtype=np.float32)
        for b, clip in enumerate(clips):
            batch[b, : clip.size] = clip
        return {"features": torch.from_numpy(batch), "feature_lengths": torch.tensor(lengths, dtype=torch.long)}


class HFSSLEncoder(AudioEncoder):
    """A WavLM / HuBERT / wav2vec 2.0 encoder returning the outputs of ``tapped_layers``.

    Args:
        model_path: local HF directory (or hub id) with ``config.json`` and weights.
        preset: packaged architecture for meta-device builds (``toolkit/presets/<preset>.json``).
        tapped_layers: 0-based Transformer layers to return; default: 4 evenly spaced, last included.
        frozen: no gradients, always in eval mode, forward under ``no_grad``.
    """

    frame_rate = 50.0
    model_class: type[PreTrainedModel]
    config_class: type[PretrainedConfig]

    def __init__(
        self,
        model_path: str | None = None,
        preset: str | None = None,
        tapped_layers: list[int] | None = None,
        frozen: bool = True,
    ):
        super().__init__()
        what = f"encoder {self.registered_name}"
        self.model_dir: Path | None = None
        if weights_enabled():
            resolved = check_model_path(model_path, what)
            self.model_dir = Path(resolved) if Path(resolved).is_dir() else None
            model = self.model_class.from_pretrained(resolved, layerdrop=0.0)
        else:
            config = self.config_class.from_dict(resolve_config_dict(model_path, preset, what))
            model = self.model_class(config).to("meta")  # masked_spec_embed ignores the device context
        model.config.layerdrop = 0.0  # a skipped layer would skip its tap
        num_layers = len(model.encoder.layers)
        taps = evenly_spaced_layers(num_layers) if tapped_layers is None else [int(i) for i in tapped_layers]
        if not taps or sorted(set(taps)) != taps or taps[0] < 0 or taps[-1] >= num_layers:
            raise ValueError(
                f"{what}.tapped_layers={tapped_layers}: need increasing distinct 0-based indices in [0, {num_layers - 1}]"
            )
        model.encoder.layers = model.encoder.layers[: taps[-1] + 1]
        self.model = model
        self.tapped_layers = taps
        self.frozen = frozen
        self.output_size = model.config.hidden_size
        self.num_heads = int(model.config.num_attention_heads)
        self.num_tapped = len(taps)
        self.per_clip_convolution = model.config.feat_extract_norm == "group"
        # (kernel, stride) of each convolution, kept as plain numbers for num_frames
        self.conv_layers = [(int(k), int(st)) for k, st in zip(model.config.conv_kernel, model.config.conv_stride)]
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def feature_extractor(self) -> WaveformFeatures:
        """Raw waveforms, normalised if the checkpoint's preprocessor says so.

        Without a ``preprocessor_config.json`` we follow fairseq: checkpoints with a LayerNorm
        conv stack (the "large" ones) were trained on normalised audio, GroupNorm ones were not.
        """
        preprocessor = self.model_dir / "preprocessor_config.json" if self.model_dir is not None else None
        if preprocessor is not None and preprocessor.is_file():
            normalize = bool(json.loads(preprocessor.read_text()).get("do_normalize", True))
        else:
            normalize = self.model.config.feat_extract_norm == "layer"
        return WaveformFeatures(normalize)

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv stack makes of one clip (padded to 400 samples by the featuriser, as ``forward`` sees it)."""
        frames = max(int(num_samples), MIN_SAMPLES)
        for kernel, stride in self.conv_layers:
            frames = (frames - kernel) // stride + 1
        return frames

    def output_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """Frames the conv stack makes of each clip's samples."""
        return self.model._get_feat_extract_output_lengths(sample_lengths).long()

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> EncoderOutput:
        """(B, samples) waveforms and their sample counts -> outputs of the tapped layers."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self._forward(features, feature_lengths)

    def _forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> EncoderOutput:
        model = self.model
        features = features.to(next(model.parameters()).dtype)
        lengths = self.output_lengths(feature_lengths)
        steps = int(lengths.max())
        if self.per_clip_convolution:
            convs = [model.feature_extractor(features[b: b + 1, : int(n)]) for b, n in enumerate(feature_lengths.tolist())]
            conv = features.new_zeros(len(convs), convs[0].shape[1], steps)
            for b, c in enumerate(convs):
                conv[b, :, : c.shape[-1]] = c[0]
        else:
            conv = model.feature_extractor(features)[:, :, :steps]
        projected = model.feature_projection(conv.transpose(1, 2))
        if isinstance(projected, tuple):  # wav2vec2 / WavLM also return the normalised conv features
            projected = projected[0]
        valid = torch.arange(steps, device=features.device)[None, :] < lengths[:, None]

        taps: list[torch.Tensor] = []
        tapped = set(self.tapped_layers)
        padded = None if bool(valid.all()) else ~valid[:, :, None]

        def keep(index: int):
            def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor | tuple) -> torch.Tensor | tuple | None:
                hidden = output[0] if isinstance(output, tuple) else output
                if padded is not None:
                    # Padded rows are keys of the next layer: the mask weights them by ~0, but 0 x NaN is NaN,
                    # so a non-finite value a kernel left in one would spread to every valid frame.
                    hidden = hidden.masked_fill(padded, 0)
                if index in tapped:
                    taps.append(hidden)
                if padded is None:
                    return None
                return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

            return hook

        handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(model.encoder.layers)]
        try:
            with warnings.catch_warnings():  # WavLM mixes a bool padding mask with a float position bias
                warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
                model.encoder(projected, attention_mask=valid)
        finally:
            for handle in handles:
                handle.remove()
        if len(taps) != len(self.tapped_layers):  # layer drop or a changed HF encoder
            raise RuntimeError(f"encoder {self.registered_name}: captured {len(taps)} tapped layers, expected {len(self.tapped_layers)}")
        states = [t.masked_fill(~valid[:, :, None], 0.0) for t in taps]
        return EncoderOutput(hidden_states=states, lengths=lengths)


@ENCODERS.register("wavlm")
class WavLMEncoder(HFSSLEncoder):
    """WavLM (microsoft/wavlm-base-plus, wavlm-large) through transformers' ``WavLMModel``."""

    model_class = WavLMModel
    config_class = WavLMConfig


@ENCODERS.register("hubert")
class HubertEncoder(HFSSLEncoder):
    """HuBERT (facebook/hubert-base-ls960, hubert-large-ll60k) through ``HubertModel``."""

    model_class = HubertModel
    config_class = HubertConfig


@ENCODERS.register("wav2vec2")
class Wav2Vec2Encoder(HFSSLEncoder):
    """wav2vec 2.0 (facebook/wav2vec2-base, -large-lv60) through ``Wav2Vec2Model``."""

    model_class = Wav2Vec2Model
    config_class = Wav2Vec2Config
