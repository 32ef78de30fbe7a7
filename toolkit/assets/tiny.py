"""Tiny random-init models with real tokenizers: the fast stand-ins for tests and the fallback path.

Why: unit tests must run in seconds on 2 CPU cores, yet exercise the same code as the real models
(chat template, special tokens, feature extractor, ``generate``).  So the architectures here are the
real ones shrunk (hidden 64, 2 layers) with a fixed seed, and the tokenizer / feature-extractor /
generation files are copied unchanged from the converted real models.  Encoders whose weights no
machine here can get (WavLM, HuBERT, wav2vec2) exist only in this tiny form.

Each builder writes a ``save_pretrained`` directory that ``from_pretrained`` reloads, and a
``tiny.json`` stating the seed and what it was built from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from toolkit.audio import SAMPLE_RATE

SEED = 0

LLM_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
WHISPER_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "generation_config.json",
)

# Tiny audio encoders share this frame rate with the real ones: a 320-sample hop (50 frames/s at 16 kHz).
_TINY_CONV = {"conv_dim": (32, 32, 32), "conv_kernel": (10, 8, 4), "conv_stride": (5, 8, 8)}
_TINY_SSL = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "vocab_size": 32,
    **_TINY_CONV,
}


def _copy_files(src_dir: Path, dest_dir: Path, names: tuple[str, ...], required: tuple[str, ...]) -> list[str]:
    copied = []
    for name in names:
        if (src_dir / name).is_file():
            shutil.copy2(src_dir / name, dest_dir / name)
            copied.append(name)
    missing = [n for n in required if n not in copied]
    if missing:
        raise FileNotFoundError(
            f"{src_dir} lacks {', '.join(missing)}; run `python tools/prepare_assets.py` to convert the real model first"
        )
    return copied


def _stamp(out_dir: Path, **info: object) -> None:
    (out_dir / "tiny.json").write_text(json.dumps({"seed": SEED, "random_init": True, **info}, indent=1) + "\n")


def build_tiny_llama(out_dir: str | Path, tokenizer_dir: str | Path) -> Path:
    """A 2-layer Llama (hidden 64, 4 heads / 2 KV heads) with the tokenizer and chat template of ``tokenizer_dir``.

    ``tokenizer_dir`` is a converted LLM directory (SmolLM2) or any folder with an HF ``tokenizer.json``;
    the vocabulary size and the bos/eos/pad ids come from that tokenizer.
    """
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    src, out = Path(tokenizer_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    copied = _copy_files(src, out, LLM_TOKENIZER_FILES, required=("tokenizer.json", "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(out)
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False
    )
    model.save_pretrained(out)
    _stamp(out, built_from=str(src), tokenizer_files=copied)
    return out


def build_tiny_whisper(out_dir: str | Path, tokenizer_dir: str | Path) -> Path:
    """A Whisper with d_model 64, 4 encoder / 2 decoder layers, 4 heads, and the real tiny.en tokenizer.

    The positional tables keep the real sizes (1500 encoder frames = 30 s, 448 decoder positions) so
    inputs are shaped exactly as for the real model; the generation config and feature extractor
    are the real ones, so ``generate`` runs the same code path (and outputs noise).
    """
    from transformers import AutoTokenizer, WhisperConfig, WhisperForConditionalGeneration

    src, out = Path(tokenizer_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    copied = _copy_files(
        src, out, WHISPER_TOKENIZER_FILES, required=("tokenizer.json", "preprocessor_config.json", "generation_config.json")
    )
    real = json.loads((src / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = WhisperConfig(
        vocab_size=real["vocab_size"],
        num_mel_bins=real["num_mel_bins"],
        d_model=64,
        encoder_layers=4,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=real["max_source_positions"],
        max_target_positions=real["max_target_positions"],
        decoder_start_token_id=real["decoder_start_token_id"],
        bos_token_id=real["bos_token_id"],
        eos_token_id=real["eos_token_id"],
        pad_token_id=real["pad_token_id"],
        begin_suppress_tokens=None,
        suppress_tokens=None,
        tie_word_embeddings=True,
    )
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"{src}: tokenizer has {len(tokenizer)} tokens but the model vocabulary is {config.vocab_size}")
    generation_config = json.loads((out / "generation_config.json").read_text())
    torch.manual_seed(SEED)
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    # save_pretrained writes a default generation_config.json; the real one (forced no-timestamps,
    # suppressed tokens) is what makes generate() take the same path as the real model.
    (out / "generation_config.json").write_text(json.dumps(generation_config, indent=2) + "\n")
    _stamp(out, built_from=str(src), tokenizer_files=copied)
    return out


def _build_tiny_ssl(out_dir: str | Path, config_cls_name: str, model_cls_name: str, **extra: object) -> Path:
    import transformers
    from transformers import Wav2Vec2FeatureExtractor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = getattr(transformers, config_cls_name)(**_TINY_SSL, **extra)
    torch.manual_seed(SEED)
    model = getattr(transformers, model_cls_name)(config).eval()
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, do_normalize=True,
                             return_attention_mask=True).save_pretrained(out)
    _stamp(out, architecture=model_cls_name)
    return out


def build_tiny_wavlm(out_dir: str | Path) -> Path:
    """A 2-layer WavLM (hidden 32) with a 3-layer conv front end of total stride 320 (50 frames/s)."""
    return _build_tiny_ssl(out_dir, "WavLMConfig", "WavLMModel", num_buckets=32, max_bucket_distance=80)


def build_tiny_hubert(out_dir: str | Path) -> Path:
    """A 2-layer HuBERT (hidden 32) with a 3-layer conv front end of total stride 320 (50 frames/s)."""
    return _build_tiny_ssl(out_dir, "HubertConfig", "HubertModel")


def build_tiny_wav2vec2(out_dir: str | Path) -> Path:
    """A 2-layer wav2vec 2.0 (hidden 32) with a 3-layer conv front end of total stride 320 (50 frames/s)."""
    return _build_tiny_ssl(out_dir, "Wav2Vec2Config", "Wav2Vec2Model")
