"""The decoding stage's settings: the ``decode:`` section, and what its shards must agree on.

``toolkit.bin.decode`` (the stage), ``toolkit.bin.launch`` (which decides, from the shard markers and no
model, which shards still need to run) and the scorer read them from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.config import build_section


@dataclass
class DecodeConfig:
    """The ``decode:`` section.

    Args:
        model_dir: an exported/trained model directory (``config.yaml`` + ``model.safetensors``).
        eval_sets: data dirs (or benchmark dirs) each holding the eval manifest.
        output_dir: decode outputs go to ``<output_dir>/<set name>/decode.jsonl``.
        manifest: manifest file name inside each eval set.
        batch_size: conversations per ``generate`` call (left-padded together).
        generation: decoding settings over the model's own (greedy by default).
        transcriber: replaces the model's transcriber at inference (e.g. ``{name: whisper, ...}``);
            null keeps it.
        device: ``cpu`` or ``cuda``.
        model_overrides: extra ``key=value`` overrides applied to the model's config.
        backend: the chat engine that decodes (toolkit/models/chat_engines/): ``hf`` (the toolkit's own
            ``generate``) or ``vllm`` (the exported model inside vLLM through our plugin; greedy fp32 equals
            ``hf`` token for token).
        vllm: further arguments of the ``vllm`` engine (dtype, max_model_len, gpu_memory_utilization, ...).
    """

    model_dir: str
    eval_sets: list[str]
    output_dir: str
    manifest: str = "eval.jsonl"
    batch_size: int = 8
    generation: dict[str, Any] = field(default_factory=dict)
    transcriber: dict[str, Any] | None = None
    device: str = "cpu"
    model_overrides: list[str] = field(default_factory=list)
    backend: str = "hf"
    vllm: dict[str, Any] = field(default_factory=dict)


    def engine_node(self) -> dict[str, Any]:
        """The ``CHAT_ENGINES`` node this section describes (a key the engine does not take fails its check)."""
        node: dict[str, Any] = {"name": self.backend, "model_dir": self.model_dir, "generation": dict(self.generation),
                                "device": self.device, **dict(self.vllm)}
        if self.model_overrides:
            node["model_overrides"] = list(self.model_overrides)
        if self.transcriber is not None:
            node["transcriber"] = dict(self.transcriber)
        return node


def model_identity(model_dir: str, overrides: list[str], generation: dict, transcriber: dict | None,
                   hash_weights: bool = True) -> dict[str, Any]:
    """What produced a prediction: the weights' hash, the model config and the decoding settings."""
    import hashlib

    weights = Path(model_dir) / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest() if hash_weights and weights.is_file() else None
    config = (Path(model_dir) / "config.yaml").read_text() if (Path(model_dir) / "config.yaml").is_file() else ""
    return json.loads(json.dumps({"weights_sha256": digest, "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
                                  "overrides": overrides, "generation": generation, "transcriber": transcriber}, default=str))


def shard_identity(section: DecodeConfig, nshards: int) -> dict[str, Any]:
    """What this stage's shards must agree on, from files alone (no model loads): the trained weights'
    hash, the model config, the decoding settings and the sets decoded."""
    from toolkit.shards import make_identity

    config = model_identity(section.model_dir, section.model_overrides, section.generation, section.transcriber,
                            hash_weights=False)
    config.update(backend={"name": section.backend, **section.vllm}, manifest=section.manifest,
                  sets=[Path(s).name for s in section.eval_sets])
    return make_identity("decode", config, Path(section.model_dir) / "model.safetensors", nshards)


def shard_plan(cfg: Any, nshards: int) -> tuple[Path, dict[str, Any], list[tuple[Path, str]]]:
    """(marker dir, identity, [(directory, stem) of each output set]) for the launcher and the scorer."""
    section = build_section(cfg.decode, DecodeConfig, "decode")
    out_root = Path(section.output_dir)
    return out_root, shard_identity(section, nshards), [(out_root / Path(s).name, "decode") for s in section.eval_sets]
