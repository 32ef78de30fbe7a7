"""Load the official DeSTA2.5-Audio connector weights into our ``qformer`` adapter.

The released checkpoint (DeSTA-ntu/DeSTA2.5-Audio-Llama-3.1-8B, ``model.safetensors``) holds only
the trainable weights, all under ``perception.connector.`` (names from the public repo
kehanlu/DeSTA2.5-Audio, ``QformerConnector``)::

    perception.connector.layer_weights                                  (Q, L)
    perception.connector.layer_prompts.<l>                              (1, Q, d)
    perception.connector.qformer.layer.<n>.attention.self.{query,key,value}.{weight,bias}
    perception.connector.qformer.layer.<n>.attention.output.{dense,LayerNorm}.{weight,bias}
    perception.connector.qformer.layer.<n>.crossattention.<same as attention>
    perception.connector.qformer.layer.<n>.intermediate.dense.{weight,bias}
    perception.connector.qformer.layer.<n>.output.{dense,LayerNorm}.{weight,bias}
    perception.connector.proj.0.{weight,bias}   LayerNorm(d)
    perception.connector.proj.1.{weight,bias}   Linear(d -> LLM hidden)

Our :class:`toolkit.models.adapters.qformer.QFormerAdapter` uses the same names below ``adapter.``,
so the mapping is a prefix swap plus a completeness check that lists every missing or unexpected
key instead of loading half a model.  Use it with ``encoder.reference_compatible: true`` (the
checkpoint was trained on 3000-frame windows with no mask).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

OFFICIAL_PREFIX = "perception.connector."
OUR_PREFIX = "adapter."

_ATTENTION_KEYS = [
    f"{block}.{param}"
    for block in ("self.query", "self.key", "self.value", "output.dense", "output.LayerNorm")
    for param in ("weight", "bias")
]
LAYER_KEYS = (
    [f"attention.{k}" for k in _ATTENTION_KEYS]
    + [f"crossattention.{k}" for k in _ATTENTION_KEYS]
    + ["intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight", "output.dense.bias",
       "output.LayerNorm.weight", "output.LayerNorm.bias"]
)
TOP_KEYS = ["layer_weights", "proj.0.weight", "proj.0.bias", "proj.1.weight", "proj.1.bias"]


class OfficialCheckpointError(KeyError):
    """An official state dict whose keys do not form a complete DeSTA2.5 connector."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def expected_connector_keys(num_layers: int, num_inputs: int) -> list[str]:
    """Every key (without prefix) of a connector with ``num_layers`` Q-Former layers and ``num_inputs`` taps."""
    keys = list(TOP_KEYS) + [f"layer_prompts.{i}" for i in range(num_inputs)]
    keys += [f"qformer.layer.{n}.{k}" for n in range(num_layers) for k in LAYER_KEYS]
    return keys


def _strip_official(key: str) -> str | None:
    """The key below ``perception.connector.`` (any wrapper prefix before it is tolerated), else None."""
    at = key.find(OFFICIAL_PREFIX)
    return key[at + len(OFFICIAL_PREFIX):] if at >= 0 else None


def official_adapter_config(official_sd: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Our ``qformer`` adapter arguments implied by the checkpoint's shapes.

    Returns ``num_layers``, ``num_queries``, ``num_inputs``, ``hidden_size``, ``intermediate_size``
    and ``output_size`` (the LLM width).  Heads cannot be read from shapes: the reference uses the
    encoder's own head count, which is our adapter's default (``input_heads`` from the encoder).
    """
    inner = {k: v for key, v in official_sd.items() if (k := _strip_official(key)) is not None}
    if "layer_weights" not in inner or "proj.1.weight" not in inner:
        raise OfficialCheckpointError(
            f"not a DeSTA2.5 connector state dict: no '{OFFICIAL_PREFIX}layer_weights' / '{OFFICIAL_PREFIX}proj.1.weight' "
            f"among {len(official_sd)} keys (first: {sorted(official_sd)[:5]})"
        )
    layers = {int(m.group(1)) for k in inner if (m := re.match(r"qformer\.layer\.(\d+)\.", k))}
    num_queries, num_inputs = inner["layer_weights"].shape
    return {
        "num_layers": max(layers) + 1 if layers else 0,
        "num_queries": int(num_queries),
        "num_inputs": int(num_inputs),
        "hidden_size": int(inner["proj.0.weight"].shape[0]),
        "intermediate_size": int(inner["qformer.layer.0.intermediate.dense.weight"].shape[0]) if layers else 0,
        "output_size": int(inner["proj.1.weight"].shape[0]),
    }


def official_adapter_state_dict(
    official_sd: Mapping[str, torch.Tensor],
    expected_keys: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Map official ``perception.connector.*`` weights onto our ``adapter.*`` keys.

    Args:
        official_sd: the official trainable-weights state dict (see :func:`load_official_checkpoint`).
        expected_keys: optional keys of the receiving model (with or without the ``adapter.``
            prefix) to check against, e.g. ``model.adapter.state_dict().keys()``; by default the
            complete key set implied by the checkpoint's own layer count and tap count.

    Raises:
        OfficialCheckpointError: listing every missing and unexpected key.
    """
    config = official_adapter_config(official_sd)
    mapped: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in official_sd.items():
        inner = _strip_official(key)
        if inner is None:
            unexpected.append(key)
        else:
            mapped[OUR_PREFIX + inner] = value
    if expected_keys is None:
        wanted = {OUR_PREFIX + k for k in expected_connector_keys(config["num_layers"], config["num_inputs"])}
    else:
        wanted = {k if k.startswith(OUR_PREFIX) else OUR_PREFIX + k for k in expected_keys}
    missing = sorted(wanted - set(mapped))
    unexpected += sorted(set(mapped) - wanted)
    if missing or unexpected:
        raise OfficialCheckpointError(
            "official DeSTA2.5 checkpoint does not match the qformer adapter:\n"
            f"  missing ({len(missing)}): {missing}\n  unexpected ({len(unexpected)}): {unexpected}\n"
            f"  checkpoint implies adapter args {config}; set adapter.num_layers / num_queries and the encoder's "
            f"tapped_layers to match (the release uses 6 layers, 64 queries, 4 taps of whisper-large-v3)."
        )
    return mapped


# The reference picks its taps from the encoder id (QformerConnector); any other id is refused there too.
REFERENCE_TAPS = {
    "openai/whisper-large-v3": [7, 15, 23, 31],
    "openai/whisper-medium": [5, 11, 17, 23],
    "openai/whisper-small": [2, 5, 8, 11],
    "openai/whisper-tiny": [0, 1, 2, 3],
}
RELEASE_REPO = "DeSTA-ntu/DeSTA2.5-Audio-Llama-3.1-8B"


@dataclass
class Release:
    """Where a downloaded release keeps its files: the trained weights and (if present) its config.json."""

    weights: Path
    config: dict[str, Any] | None


def find_release(path: str | Path) -> Release:
    """The release's ``model.safetensors`` and ``config.json`` from any of the layouts a download leaves.

    Accepted: the weights file itself; a folder holding it (``huggingface-cli download REPO --local-dir
    DIR``); a hub-cache repo folder ``models--DeSTA-ntu--...`` (``huggingface-cli download REPO`` without
    ``--local-dir``: the snapshot named by ``refs/main``, else the only one); or the hub cache root
    holding such a folder.
    """
    root = Path(path).expanduser()
    weights = _release_weights(root)
    if weights is None:
        raise FileNotFoundError(
            f"official DeSTA2.5 release not found at {root}: no model.safetensors there, nor in a hub-cache snapshot "
            f"below it. Download it on a machine with hub access (`huggingface-cli download {RELEASE_REPO} --local-dir "
            f"DIR`) and pass DIR, or pass the model.safetensors file"
        )
    config_path = weights.parent / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    return Release(weights=weights, config=config)


def _release_weights(root: Path) -> Path | None:
    if root.is_file():
        return root
    if (root / "model.safetensors").is_file():
        return root / "model.safetensors"
    repos = [root] if (root / "snapshots").is_dir() else sorted(root.glob("models--*DeSTA2.5-Audio*"))
    if len(repos) > 1:
        names = ", ".join(r.name for r in repos)
        raise FileNotFoundError(f"{root} holds several DeSTA2.5 releases ({names}); pass the one you mean")
    for repo in repos:
        ref = repo / "refs" / "main"
        if ref.is_file() and (repo / "snapshots" / ref.read_text().strip() / "model.safetensors").is_file():
            return repo / "snapshots" / ref.read_text().strip() / "model.safetensors"
        snapshots = sorted((repo / "snapshots").glob("*/model.safetensors"))
        if len(snapshots) > 1:
            names = ", ".join(p.parent.name for p in snapshots)
            raise FileNotFoundError(f"{repo}: several snapshots ({names}) and no refs/main "
                                    f"naming one; pass the snapshot folder you mean")
        if snapshots:
            return snapshots[0]
    return None


def release_overrides(release_config: Mapping[str, Any] | None,
                      where: str = "config.json") -> list[tuple[str, Any, str]]:
    """Our config values the release's ``config.json`` (``DeSTA25Config``) fixes: (key, value, from what).

    Raises:
        OfficialCheckpointError: a release this mapping does not cover (another connector, LoRA, an
            encoder the reference has no taps for), naming the field.
    """
    if not release_config:
        return []
    cfg = dict(release_config)
    mode = cfg.get("connector_mode", "qformer_1")
    if mode != "qformer_1":
        raise OfficialCheckpointError(f"{where}: connector_mode {mode!r}: only the reference's "
            f"'qformer_1' maps onto our qformer adapter")
    if cfg.get("use_lora"):
        raise OfficialCheckpointError(f"{where}: use_lora is true; the importer maps the connector only "
            f"(perception.connector.*), "
                                      f"not LoRA weights inside the LLM")
    out: list[tuple[str, Any, str]] = []
    if "qformer_num_hidden_layers" in cfg:
        out.append(("adapter.num_layers", int(cfg["qformer_num_hidden_layers"]), "qformer_num_hidden_layers"))
    if "prompt_size" in cfg:
        out.append(("adapter.num_queries", int(cfg["prompt_size"]), "prompt_size"))
    encoder_id = cfg.get("encoder_model_id")
    if encoder_id is not None:
        if encoder_id not in REFERENCE_TAPS:
            raise OfficialCheckpointError(f"{where}: encoder_model_id {encoder_id!r} has no tapped "
                f"layers in the reference "
                                          f"(known: {', '.join(REFERENCE_TAPS)})")
        out.append(("encoder.tapped_layers", REFERENCE_TAPS[encoder_id], f"encoder_model_id={encoder_id}"))
    return out


def load_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the official ``model.safetensors`` (a file, or any folder :func:`find_release` accepts) on CPU."""
    from safetensors.torch import load_file

    return load_file(str(find_release(path).weights), device="cpu")
