"""The ``hf`` chat engine: an LLM backbone through the toolkit's one batched ``generate`` (left padding, KV cache)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolkit.models.chat_engines.base import CHAT_ENGINES, ChatEngine, Conversation
from toolkit.models.generation import Generation, GenerationSettings, generate_chat
from toolkit.models.llms import LLMS


@CHAT_ENGINES.register("hf")
class HFChatEngine(ChatEngine):
    """Answers with an ``llm:`` node built exactly as the LALM builds its backbone.

    Args:
        llm: the LLM config node (``{name: hf_causal_lm, model_path: ..., dtype: ...}``); self-generation
            passes the node the model trains on, so the targets are the backbone's own.
        generation: decoding settings (see GenerationSettings).
        device: ``cpu``, ``cuda``, ``cuda:1`` ...
        batch_size: conversations per ``generate`` call (null: each call's conversations as one batch).
    """

    def __init__(self, llm: dict[str, Any], generation: dict[str, Any] | None = None, device: str = "cpu",
                 batch_size: int | None = None):
        self.llm = LLMS.build(llm, "llm").to(device).eval()
        self.llm_config = llm
        self.settings = GenerationSettings(**(generation or {}))
        self.batch_size = batch_size

    def generate(self, conversations: Sequence[Conversation], settings: GenerationSettings | None = None
                 ) -> list[Generation]:
        batch = self.batch_size or max(len(conversations), 1)
        return generate_chat(self.llm, list(conversations), settings or self.settings, batch_size=batch)

    def description(self) -> dict[str, Any]:
        return {"backend": "hf", "llm": self.llm_config, "generation": self.settings.to_dict()}
