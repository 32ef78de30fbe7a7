"""LoRA in the LLM, merged into the base weights while vLLM loads them: ``W + (alpha / r) * B @ A``.

An export keeps the trained LoRA pairs in ``model.safetensors`` under peft's names
(``llm.model.base_model.model.<module>.lora_A.default.weight``); the base weights come from the
LLM directory. vLLM reads the export's file first, so every pair is known before the base weight
it belongs to streams past. Merging once at load time serves the model at the frozen backbone's
speed; vLLM's own LoRA path would need its per-request adapter machinery for a single fixed adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

PEFT_PREFIX = "llm.model.base_model.model."


class LoRAMerger:
    """Collects an export's LoRA pairs and folds each into its base weight.

    Args:
        lora: the export's ``llm.lora`` node (``r``, ``alpha``; missing keys take the training defaults).
    """

    def __init__(self, lora: Mapping[str, Any] | None):
        from toolkit.models.llms.hf_causal_lm import LORA_DEFAULTS

        settings = {**LORA_DEFAULTS, **dict(lora or {})}
        self.scale = float(settings["alpha"]) / float(settings["r"])
        self.pairs: dict[str, dict[str, torch.Tensor]] = {}  # base weight name -> {"A": ..., "B": ...}

    def take(self, name: str, tensor: torch.Tensor) -> bool:
        """Keep ``name`` if it is a LoRA weight of the export; False for any other weight."""
        if not name.startswith(PEFT_PREFIX) or ".lora_" not in name:
            return False
        module, rest = name[len(PEFT_PREFIX):].split(".lora_", 1)
        which = rest.split(".", 1)[0]  # A or B
        if which not in ("A", "B"):
            raise KeyError(f"model.safetensors: {name}: expected lora_A or lora_B")
        self.pairs.setdefault(f"{module}.weight", {})[which] = tensor
        return True

    def merge(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """The base weight ``name`` with its LoRA update added (unchanged if it has none)."""
        pair = self.pairs.pop(name, None)
        if pair is None:
            return tensor
        if set(pair) != {"A", "B"}:
            raise KeyError(f"model.safetensors: the LoRA pair of {name} lacks lora_{'A' if 'A' not in pair else 'B'}; re-run the export stage")
        update = self.scale * (pair["B"].float() @ pair["A"].float())
        if update.shape != tensor.shape:
            raise ValueError(f"LoRA update for {name} has shape {tuple(update.shape)}, the weight {tuple(tensor.shape)}: "
                             f"was the export trained on another LLM than llm.model_path?")
        return (tensor.float() + update).to(tensor.dtype)

    def check_all_merged(self) -> None:
        """Every LoRA pair found its base weight (else the export and the LLM directory disagree)."""
        if self.pairs:
            raise KeyError(f"LoRA weights for {sorted(self.pairs)[:3]} match no weight of llm.model_path; "
                           f"was the export trained on another LLM?")
