"""Any s3prl upstream as a multi-layer audio encoder (optional engine: ``pip install --no-deps s3prl==0.4.18``).

s3prl is imported only when this encoder is built.  It must be installed **without its
dependencies**: they pull a torchaudio build that needs CUDA libraries, and once that torchaudio is
present even ``import transformers`` fails.  :func:`check_torchaudio` turns that crash into a
message with the fix.

We load ``s3prl.upstream.<upstream>.expert.UpstreamExpert`` directly with a local checkpoint file
(``s3prl.nn.S3PRLUpstream`` would import every upstream, many of which need torchaudio).  Its
output follows s3prl's contract: ``hidden_states`` is a list whose entry 0 is the input of the
first Transformer layer and entry ``i + 1`` the output of layer ``i``; tap ``i`` is entry ``i + 1``
(the last entry is the upstream's final output, after its closing LayerNorm if it has one).

Each clip runs through the upstream on its own: s3prl upstreams treat padding in different ways
(WavLM-Base's GroupNorm conv stack sees the zeros), and one clip at a time is the only way that is
padding-invariant for all of them.  The frozen upstream is cheap next to the LLM.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch

from toolkit.audio import SAMPLE_RATE
from toolkit.models.encoders.base import ENCODERS, AudioEncoder, EncoderOutput
from toolkit.models.loading import AssetMissingError, weights_enabled

INSTALL_HINT = "pip install --no-deps s3prl==0.4.18"
MIN_SAMPLES = 400

from toolkit.models.loading import check_torchaudio  # noqa: E402  (re-exported for callers)


def import_s3prl_expert(upstream: str):
    """``s3prl.upstream.<upstream>.expert.UpstreamExpert``, with install and torchaudio hints."""
    check_torchaudio()
    if importlib.util.find_spec("s3prl") is None:
        raise ImportError(f"encoder s3prl: the s3prl package is not installed. Install it with `{INSTALL_HINT}`.")
    try:
        module = importlib.import_module(f"s3prl.upstream.{upstream}.expert")
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.startswith("s3prl.upstream"):
            import s3prl.upstream

            names = sorted(p.name for p in Path(s3prl.upstream.__path__[0]).iterdir() if (p / "expert.py").is_file())
            raise ImportError(f"encoder s3prl: unknown upstream '{upstream}'. s3prl upstreams: {', '.join(names)}") from err
        raise ImportError(
            f"encoder s3prl: upstream '{upstream}' needs the package '{err.name}', which s3prl installed with "
            f"--no-deps lacks. Install it, or use an upstream that does not need it (wavlm works as is)."
        ) from err
    return module.UpstreamExpert


def conv_stack(upstream: torch.nn.Module) -> list[tuple[int, int]] | None:
    """(kernel, stride) of each convolution of the upstream's fairseq-style feature extractor, None without one.

    WavLM, HuBERT and wav2vec 2.0 experts keep it as ``feature_extractor.conv_layers``: one block per
    layer, each starting with its ``Conv1d``; the hidden states have one frame per output step.
    """
    for module in upstream.modules():
        layers = getattr(module, "conv_layers", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers):
            convs = [next((m for m in block.modules() if isinstance(m, torch.nn.Conv1d)), None) for block in layers]
            if all(c is not None for c in convs):
                return [(int(c.kernel_size[0]), int(c.stride[0])) for c in convs]
    return None


class S3PRLWaveforms:
    """Picklable featuriser: waveforms -> zero-padded (B, samples) float32 plus sample counts.

    No normalisation here: s3prl experts normalise inside when their checkpoint says so.
    """

    def __call__(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        clips = []
        for wav in waveforms:
            wav = np.asarray(wav, dtype=np.float32).reshape(-1)
            if wav.size == 0:
                raise ValueError("encoder s3prl: got an empty waveform; check the audio file (utt2dur should be > 0)")
            clips.append(np.pad(wav, (0, max(0, MIN_SAMPLES - wav.size))))
        lengths = [c.size for c in clips]
        batch = np.zeros((len(clips), max(lengths)), dtype=np.float32)
        for b, clip in enumerate(clips):
            batch[b, : clip.size] = clip
        return {"features": torch.from_numpy(batch), "feature_lengths": torch.tensor(lengths, dtype=torch.long)}


@ENCODERS.register("s3prl")
class S3PRLEncoder(AudioEncoder):
    """An s3prl upstream (``s3prl.upstream.<upstream>.expert``) loaded from a local checkpoint.

    Args:
        upstream: s3prl upstream folder name ("wavlm", "hubert", ...).
        model_path: the upstream's checkpoint file (e.g. s3prl's converted ``wavlm_base_plus.pt``).
        tapped_layers: 0-based Transformer layers to return; default: 4 evenly spaced, last included.
        frozen: no gradients, always in eval mode, forward under ``no_grad``.

    Sizes (layers, width) are learned from one forward on 1 s of silence at build time, as
    ``s3prl.nn.S3PRLUpstream`` does.  Inside ``skip_weights()`` the checkpoint is still read (s3prl
    has no config-only build) and the module is then moved to the meta device.
    """

    frame_rate = 50.0

    def __init__(
        self,
        upstream: str = "wavlm",
        model_path: str | None = None,
        tapped_layers: list[int] | None = None,
        frozen: bool = True,
    ):
        super().__init__()
        expert_class = import_s3prl_expert(upstream)
        if model_path is None or not Path(model_path).expanduser().is_file():
            raise AssetMissingError(
                f"encoder s3prl: model_path '{model_path}' is not a checkpoint file. Point it at the s3prl "
                f"checkpoint of upstream '{upstream}' (s3prl's hub names the download URL)."
            )
        meta = not weights_enabled()
        with torch.device("cpu"):
            self.upstream = expert_class(str(Path(model_path).expanduser()))
            self.upstream.eval()
            with torch.no_grad():
                probe = self.upstream([torch.zeros(SAMPLE_RATE)])["hidden_states"]
        num_layers = len(probe) - 1
        if tapped_layers is None:
            taps = [math.ceil(num_layers * (k + 1) / 4) - 1 for k in range(4)] if num_layers > 4 else list(range(num_layers))
        else:
            taps = [int(i) for i in tapped_layers]
        if not taps or sorted(set(taps)) != taps or taps[0] < 0 or taps[-1] >= num_layers:
            raise ValueError(
                f"encoder.tapped_layers={tapped_layers}: need increasing distinct 0-based indices in [0, {num_layers - 1}] "
                f"(s3prl upstream '{upstream}' has {num_layers} layers)"
            )
        self.upstream_name = upstream
        self.tapped_layers = taps
        self.frozen = frozen
        self.output_size = int(probe[-1].shape[-1])
        # s3prl's WavLM/HuBERT experts keep their fairseq-style config on the inner model
        heads = getattr(getattr(getattr(self.upstream, "model", None), "cfg", None), "encoder_attention_heads", None)
        self.num_heads = int(heads) if heads else None
        self.num_tapped = len(taps)
        self.conv_layers = conv_stack(self.upstream)
        if frozen:
            self.requires_grad_(False)
            self.eval()
        if meta:
            self.to("meta")

    def feature_extractor(self) -> S3PRLWaveforms:
        return S3PRLWaveforms()

    def num_frames(self, num_samples: int) -> int:
        """Frames the upstream's convolutional front end makes of one clip (padded to 400 samples, as featurised)."""
        if self.conv_layers is None:
            raise NotImplementedError(
                f"encoder s3prl: upstream '{self.upstream_name}' has no fairseq-style convolutional feature extractor "
                f"(a `conv_layers` list of Conv1d blocks), so its frame count per clip is unknown; use an upstream "
                f"that has one (wavlm, hubert, wav2vec2) or the transformers encoders (encoder=wavlm, hubert, wav2vec2)"
            )
        frames = max(int(num_samples), MIN_SAMPLES)
        for kernel, stride in self.conv_layers:
            frames = (frames - kernel) // stride + 1
        return frames

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> EncoderOutput:
        """(B, samples) waveforms and their sample counts -> tapped states, one clip at a time."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            per_clip = []
            for b, n in enumerate(feature_lengths.tolist()):
                hidden = self.upstream([features[b, :n]])["hidden_states"]
                per_clip.append([hidden[i + 1][0] for i in self.tapped_layers])
        lengths = [clip[0].shape[0] for clip in per_clip]
        states = []
        for k in range(len(self.tapped_layers)):
            out = per_clip[0][k].new_zeros(len(per_clip), max(lengths), self.output_size)
            for b, clip in enumerate(per_clip):
                out[b, : lengths[b]] = clip[k]
            states.append(out)
        return EncoderOutput(hidden_states=states, lengths=torch.tensor(lengths, dtype=torch.long, device=features.device))
