"""The LLM backbone interface the composite model talks to."""

from __future__ import annotations

import abc

import torch
from torch import nn

from toolkit.registry import Registry


class LanguageModel(nn.Module, metaclass=abc.ABCMeta):
    """A (frozen by default) causal LM plus its tokenizer.

    Subclasses expose ``model`` (the HF causal LM, possibly wrapped by peft), ``tokenizer``
    (left padding, a pad token), ``hidden_size``, ``eos_token_ids`` (the end-of-turn ids that stop
    generation; the first one closes every supervised response) and these hooks:

    - ``embed(input_ids)``: token embeddings from the frozen table;
    - ``decoder_hidden_states(inputs_embeds, attention_mask, position_ids)``: last hidden states,
      so the LM head can run on target positions only;
    - ``lm_head``: the output projection;
    - ``attn_implementation``: how attention runs (``eager``, ``sdpa``, ``flash_attention_2``...),
      which decides the form a packed batch's block-diagonal mask takes (``toolkit/models/packing.py``).
    """

    model: nn.Module
    tokenizer: object
    hidden_size: int
    eos_token_ids: list[int]

    @abc.abstractmethod
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        ...

    @abc.abstractmethod
    def decoder_hidden_states(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None,
                              position_ids: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        ...

    @property
    def attn_implementation(self) -> str:
        # An explicit additive mask is the form every implementation accepts.
        return "eager"


LLMS = Registry("llm", base=LanguageModel, variable="LLMS", components="toolkit.models.llms")
