"""Whisper's encoder as a multi-layer audio encoder (DeSTA2.5's perception front end).

Only the encoder of an HF Whisper checkpoint is loaded (the decoder, when needed for ASR, is a
transcriber's business).  We run the encoder layers ourselves instead of calling HF's
``WhisperEncoder.forward`` for three reasons:

- we stop after the last tapped layer (large-v3 taps ``[7, 15, 23, 31]`` need all 32 layers, but
  ``tapped_layers: [3]`` on large-v3 costs 4 layers, not 32);
- tapped states are taken **after** each tapped layer and **without** the encoder's final
  ``layer_norm``: tap ``i`` equals HF ``hidden_states[i + 1]`` of the same 30 s input, which is
  what DeSTA2.5 feeds its Q-Former;
- HF insists on exactly 3000 mel frames.  Our default mode encodes true lengths: the positional
  table is sliced to the batch length and a key-padding mask in every self-attention makes a
  clip encode the same alone and beside a longer one.

Two modes (``reference_compatible``):

- ``True``: every 30 s window is padded (or cut) to 3000 mel frames by ``WhisperFeatureExtractor``
  exactly like the reference, all 1500 encoder frames are valid (``lengths`` = 1500 per window),
  no mask.  Use it with the official DeSTA2.5 checkpoint, which was trained that way.
- ``False`` (default): true lengths, batch padded to the longest clip, masked attention.  Faster
  (a 5 s clip costs 250 frames instead of 1500) and padding-invariant.

Audio longer than 30 s is never cut: it is split into 30 s windows (at most ``max_chunks``),
each encoded on its own (Whisper's positional table covers 30 s), and the windows' frames are
concatenated in time.  (The reference cuts at 30 s; in reference mode a clip of at most 30 s is
still encoded exactly as the reference does.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

from toolkit.audio import SAMPLE_RATE
from toolkit.models.encoders.base import ENCODERS, AudioEncoder, EncoderOutput
from toolkit.models.loading import AssetMissingError, check_model_path, resolve_config_dict, weights_enabled

HOP_LENGTH = 160  # mel frames are 10 ms apart
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480000
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_LENGTH  # 3000 mel frames -> 1500 encoder frames
MIN_SAMPLES = 400  # one STFT window (25 ms); shorter pieces are zero-padded to this


def default_tapped_layers(num_layers: int) -> list[int]:
    """Four evenly spaced taps ending at the last layer: ``ceil(L * (k + 1) / 4) - 1``.

    This reproduces DeSTA2.5's choices (tiny 4 layers -> ``[0, 1, 2, 3]``, small 12 ->
    ``[2, 5, 8, 11]``, medium 24 -> ``[5, 11, 17, 23]``, large-v3 32 -> ``[7, 15, 23, 31]``) and
    extends them to sizes the reference does not cover (base, 6 layers -> ``[1, 2, 4, 5]``).
    """
    if num_layers < 4:
        return list(range(num_layers))
    return [math.ceil(num_layers * (k + 1) / 4) - 1 for k in range(4)]


def check_tapped_layers(tapped_layers: list[int], num_layers: int, what: str) -> list[int]:
    """Sorted, unique, in range; the message names the key and the valid range."""
    taps = [int(i) for i in tapped_layers]
    if not taps or sorted(set(taps)) != taps or taps[0] < 0 or taps[-1] >= num_layers:
        raise ValueError(
            f"{what}.tapped_layers={tapped_layers}: need a non-empty increasing list of distinct 0-based layer "
            f"indices in [0, {num_layers - 1}] (this model has {num_layers} layers)"
        )
    return taps


def _encoder_state_dict(model_dir: Path) -> dict[str, torch.Tensor]:
    """The encoder's tensors from a Whisper checkpoint directory, without reading the decoder's.

    Accepts ``WhisperForConditionalGeneration`` (``model.encoder.*``) and ``WhisperModel``
    (``encoder.*``) layouts, one ``model.safetensors``, a sharded index, or ``pytorch_model.bin``.
    """
    prefixes = ("model.encoder.", "encoder.")

    def strip(key: str) -> str | None:
        for prefix in prefixes:
            if key.startswith(prefix):
                return key[len(prefix):]
        return None

    index = model_dir / "model.safetensors.index.json"
    single = model_dir / "model.safetensors"
    if single.is_file() or index.is_file():
        from safetensors import safe_open

        files = [single] if single.is_file() else sorted({model_dir / f for f in json.loads(index.read_text())["weight_map"].values()})
        state = {}
        for file in files:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    name = strip(key)
                    if name is not None:
                        state[name] = handle.get_tensor(key)
        return state
    bin_file = model_dir / "pytorch_model.bin"
    if bin_file.is_file():
        full = torch.load(bin_file, map_location="cpu", weights_only=True, mmap=True)
        return {name: value for key, value in full.items() if (name := strip(key)) is not None}
    raise AssetMissingError(
        f"encoder whisper: no weights in {model_dir} (looked for model.safetensors, model.safetensors.index.json, "
        f"pytorch_model.bin). Point model_path at an HF Whisper directory (tools/prepare_assets.py makes one)."
    )


def _local_dir(model_path: str) -> Path:
    """A local directory for ``model_path``: as given, or the hub snapshot of a hub id."""
    resolved = check_model_path(model_path, "encoder whisper")
    path = Path(resolved)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "preprocessor_config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
    return Path(snapshot_download(resolved, allow_patterns=patterns))


class WhisperFeatures:
    """Picklable featuriser: 16 kHz waveforms -> padded log-mel windows plus their lengths.

    Each clip is cut into 30 s pieces, each piece featurised on its own by HF's
    ``WhisperFeatureExtractor`` (so its log-mel normalisation only sees that piece, as Whisper
    expects), and the pieces are concatenated in time.  In reference mode each piece is padded to
    3000 frames; otherwise it keeps its true length (``samples // 160`` frames).  The batch is
    zero-padded to the longest clip, rounded up to an even frame count (the encoder's second
    convolution has stride 2).
    """

    def __init__(self, extractor: WhisperFeatureExtractor, reference_compatible: bool, max_chunks: int):
        self.extractor = extractor
        self.reference_compatible = reference_compatible
        self.max_chunks = max_chunks

    def clip_features(self, waveform: np.ndarray) -> np.ndarray:
        """(mels, frames) float32 for one clip."""
        waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if waveform.size == 0:
            raise ValueError("encoder whisper: got an empty waveform; check the audio file (utt2dur should be > 0)")
        pieces = max(1, math.ceil(waveform.size / WINDOW_SAMPLES))
        if pieces > self.max_chunks:
            raise ValueError(
                f"encoder whisper: a clip of {waveform.size / SAMPLE_RATE:.1f} s needs {pieces} windows of 30 s, more than "
                f"max_chunks={self.max_chunks}. Raise encoder.max_chunks, or cut long recordings into segments in data prep."
            )
        feats = []
        for k in range(pieces):
            piece = waveform[k * WINDOW_SAMPLES:(k + 1) * WINDOW_SAMPLES]
            if self.reference_compatible:
                out = self.extractor(piece, sampling_rate=SAMPLE_RATE, return_tensors="np")  # pads/cuts to 3000
            else:
                if piece.size < MIN_SAMPLES:
                    piece = np.pad(piece, (0, MIN_SAMPLES - piece.size))
                out = self.extractor(piece, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np")
            feats.append(out["input_features"][0].astype(np.float32))
        return np.concatenate(feats, axis=-1)

    def __call__(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        clips = [self.clip_features(w) for w in waveforms]
        lengths = [c.shape[-1] for c in clips]
        longest = max(lengths) + max(lengths) % 2
        batch = np.zeros((len(clips), clips[0].shape[0], longest), dtype=np.float32)
        for b, clip in enumerate(clips):
            batch[b, :, : clip.shape[-1]] = clip
        return {"features": torch.from_numpy(batch), "feature_lengths": torch.tensor(lengths, dtype=torch.long)}


@ENCODERS.register("whisper")
class WhisperEncoder(AudioEncoder):
    """The encoder of an HF Whisper model, returning the states after ``tapped_layers``.

    Args:
        model_path: local HF Whisper directory (or hub id) holding ``config.json`` and the weights.
        preset: packaged architecture (``toolkit/presets/<preset>.json``) used when building on the
            meta device without weights (``python -m toolkit.bin.inspect``); with weights enabled,
            ``model_path`` is required and its ``config.json`` wins.
        tapped_layers: 0-based encoder layers whose outputs are returned; default: DeSTA2.5's
            four taps for the model's depth (see :func:`default_tapped_layers`).
        frozen: no gradients, always in eval mode (dropout off), forward under ``no_grad``.
        reference_compatible: pad every 30 s window to 3000 frames like the reference (no mask).
        max_chunks: most 30 s windows one clip may span (10 -> 5 minutes); longer clips fail.
        attn_implementation: HF attention kernel for the encoder layers ("sdpa" or "eager").
    """

    frame_rate = 50.0

    @classmethod
    def max_input_seconds(cls, config: dict[str, Any]) -> float | None:
        """``max_chunks`` windows of 30 s (the constructor refuses longer clips)."""
        import inspect

        default = inspect.signature(cls.__init__).parameters["max_chunks"].default
        return float(config.get("max_chunks", default)) * WINDOW_SECONDS

    def __init__(
        self,
        model_path: str | None = None,
        preset: str | None = None,
        tapped_layers: list[int] | None = None,
        frozen: bool = True,
        reference_compatible: bool = False,
        max_chunks: int = 10,
        attn_implementation: str = "sdpa",
    ):
        super().__init__()
        if max_chunks < 1:
            raise ValueError(f"encoder whisper: max_chunks={max_chunks} must be >= 1")
        self.model_dir: Path | None = None
        if weights_enabled():
            self.model_dir = _local_dir(model_path) if model_path is not None else None
            if self.model_dir is None:
                raise AssetMissingError("encoder whisper: model_path is required to load weights (preset alone only builds on the meta device)")
            config = WhisperConfig.from_pretrained(self.model_dir)
        else:
            config = WhisperConfig.from_dict(resolve_config_dict(model_path, preset, "encoder whisper"))
            if model_path is not None and Path(model_path).expanduser().is_dir():
                self.model_dir = Path(model_path).expanduser()  # its preprocessor_config.json, if any
        config._attn_implementation = attn_implementation
        self.config = config

        num_layers = config.encoder_layers
        taps = default_tapped_layers(num_layers) if tapped_layers is None else tapped_layers
        self.tapped_layers = check_tapped_layers(list(taps), num_layers, "encoder")
        self.frozen = frozen
        self.reference_compatible = reference_compatible
        self.max_chunks = max_chunks
        self.output_size = config.d_model
        self.num_heads = int(config.encoder_attention_heads)
        self.num_tapped = len(self.tapped_layers)

        if weights_enabled():
            with torch.device("meta"):
                encoder = HFWhisperEncoder(config)
            state = {k: v.float() for k, v in _encoder_state_dict(self.model_dir).items()}
            missing = sorted(set(encoder.state_dict()) - set(state))
            if missing:
                raise AssetMissingError(f"encoder whisper: {self.model_dir} lacks encoder weights {missing[:8]}{' ...' if len(missing) > 8 else ''}")
            encoder.load_state_dict(state, strict=False, assign=True)
        else:
            encoder = HFWhisperEncoder(config)
        # Layers past the last tap are never run; drop them so they cost no memory either.
        encoder.layers = encoder.layers[: self.tapped_layers[-1] + 1]
        del encoder.layer_norm  # tapped states skip the final LayerNorm (see module docstring)
        self.encoder = encoder

        if frozen:
            self.requires_grad_(False)
            self.eval()

    # -- featurising -------------------------------------------------------------------------
    def num_frames(self, num_samples: int) -> int:
        """Encoder frames of one clip, as :class:`WhisperFeatures` and ``forward`` make them.

        Each 30 s piece becomes ``samples // 160`` mel frames (a piece under 400 samples is padded to
        400; reference mode pads every piece to 3000) and each window of ``w`` mel frames ``ceil(w / 2)``
        encoder frames (the second convolution has stride 2).
        """
        samples = max(int(num_samples), 0)
        pieces = max(1, math.ceil(samples / WINDOW_SAMPLES))
        if self.reference_compatible:
            return pieces * ((WINDOW_FRAMES + 1) // 2)
        frames = 0
        for k in range(pieces):
            mels = max(min(WINDOW_SAMPLES, samples - k * WINDOW_SAMPLES), MIN_SAMPLES) // HOP_LENGTH
            frames += (mels + 1) // 2
        return frames

    def feature_extractor(self) -> WhisperFeatures:
        """Picklable ``list[np.ndarray] -> {"features", "feature_lengths"}`` for data loader workers."""
        preprocessor = self.model_dir / "preprocessor_config.json" if self.model_dir is not None else None
        if preprocessor is not None and preprocessor.is_file():
            extractor = WhisperFeatureExtractor.from_pretrained(self.model_dir)
        else:
            extractor = WhisperFeatureExtractor(feature_size=self.config.num_mel_bins)
        if extractor.feature_size != self.config.num_mel_bins:
            raise ValueError(
                f"encoder whisper: {preprocessor} has feature_size={extractor.feature_size} but the model expects "
                f"num_mel_bins={self.config.num_mel_bins}; fix the preprocessor_config.json"
            )
        return WhisperFeatures(extractor, self.reference_compatible, self.max_chunks)

    # -- encoding ----------------------------------------------------------------------------
    def encode_windows(self, features: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Tapped states of windows of at most 3000 mel frames: (W, mels, F) -> list of (W, ceil(F/2), d).

        Frames past ``lengths`` are zeroed before each convolution (so the convolutions see the
        same zeros as on a clip alone) and masked out as attention keys.
        """
        frames = features.shape[-1]
        if frames % 2:
            features = nn.functional.pad(features, (0, 1))
            frames += 1
        all_valid = bool((lengths == frames).all())
        enc = self.encoder
        if all_valid:
            hidden = nn.functional.gelu(enc.conv1(features))
        else:
            frame_mask = (torch.arange(frames, device=features.device)[None, :] < lengths[:, None]).to(features.dtype)
            hidden = nn.functional.gelu(enc.conv1(features * frame_mask[:, None, :])) * frame_mask[:, None, :]
        hidden = nn.functional.gelu(enc.conv2(hidden)).permute(0, 2, 1)
        steps = hidden.shape[1]
        if steps > enc.embed_positions.num_embeddings:
            raise ValueError(f"encoder whisper: a window of {frames} mel frames exceeds the 30 s positional table")
        hidden = hidden + enc.embed_positions.weight[:steps]
        hidden = nn.functional.dropout(hidden, p=self.config.dropout, training=self.training)

        mask = padded = None
        if not all_valid:
            valid = torch.arange(steps, device=hidden.device)[None, :] < ((lengths + 1) // 2)[:, None]
            mask = torch.zeros(valid.shape, dtype=hidden.dtype, device=hidden.device)
            mask = mask.masked_fill(~valid, torch.finfo(hidden.dtype).min)[:, None, None, :]
            padded = ~valid[:, :, None]

        taps = []
        for idx, layer in enumerate(enc.layers):
            hidden = layer(hidden, mask)
            if isinstance(hidden, tuple):  # transformers < 5 returned (hidden_states,)
                hidden = hidden[0]
            if padded is not None:
                # Padded rows are keys of the next layer: the mask weights them by ~0, but 0 x NaN is NaN,
                # so a non-finite value a kernel left in one would spread to every valid frame.
                hidden = hidden.masked_fill(padded, 0)
            if idx in self.tapped_layers:
                taps.append(hidden)
        return taps

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> EncoderOutput:
        """(B, mels, frames) log-mels and their lengths -> states after each tapped layer.

        Clips are split into 30 s windows; all windows of the batch are encoded as one batch and
        each clip's windows are concatenated back in time.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self._forward(features, feature_lengths)

    def _forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> EncoderOutput:
        features = features.to(self.encoder.conv1.weight.dtype)
        lengths = feature_lengths.tolist()
        windows: list[tuple[int, int, int]] = []  # (clip, start frame, frames)
        for b, n in enumerate(lengths):
            pieces = max(1, math.ceil(n / WINDOW_FRAMES))
            if pieces > self.max_chunks:
                raise ValueError(
                    f"encoder whisper: a clip of {n / 100:.1f} s needs {pieces} windows of 30 s, more than "
                    f"max_chunks={self.max_chunks}. Raise encoder.max_chunks, or segment long recordings in data prep."
                )
            for k in range(pieces):
                windows.append((b, k * WINDOW_FRAMES, min(WINDOW_FRAMES, n - k * WINDOW_FRAMES)))

        if len(windows) == len(lengths):  # every clip fits one window: no regrouping
            width = max(lengths)
            batch = features[:, :, :width]
        else:
            width = max(w[2] for w in windows)
            batch = features.new_zeros(len(windows), features.shape[1], width)
            for i, (b, start, n) in enumerate(windows):
                batch[i, :, :n] = features[b, :, start:start + n]
        window_lengths = torch.tensor([w[2] for w in windows], device=features.device)
        if self.reference_compatible and bool((window_lengths != WINDOW_FRAMES).any()):
            raise ValueError(
                "encoder whisper: reference_compatible=True needs 3000-frame windows; use this encoder's "
                "feature_extractor() (it pads every 30 s window), or set reference_compatible=False"
            )
        taps = self.encode_windows(batch, window_lengths)
        out_window = ((window_lengths + 1) // 2).tolist()

        out_lengths = [0] * len(lengths)
        for (b, _, _), n in zip(windows, out_window):
            out_lengths[b] += n
        steps = max(out_lengths)
        states = []
        for tap in taps:
            out = tap.new_zeros(len(lengths), steps, tap.shape[-1])
            offset = [0] * len(lengths)
            for i, ((b, _, _), n) in enumerate(zip(windows, out_window)):
                out[b, offset[b]:offset[b] + n] = tap[i, :n]
                offset[b] += n
            states.append(out)
        return EncoderOutput(hidden_states=states, lengths=torch.tensor(out_lengths, dtype=torch.long, device=features.device))

    def extra_repr(self) -> str:
        return f"tapped_layers={self.tapped_layers}, frozen={self.frozen}, reference_compatible={self.reference_compatible}"
