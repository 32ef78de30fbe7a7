"""The ``hf`` chat engine: the toolkit's own models in-process, through the one batched ``generate``.

Two kinds of model answer through it: an LLM backbone (``llm:``, text-only conversations: self-generation,
judges) and an exported LALM (``model_dir:``, conversations with audio: decoding), each with left padding
and a KV cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolkit.config import ConfigError
from toolkit.models.chat_engines.base import CHAT_ENGINES, ChatEngine, Conversation
from toolkit.models.generation import Generation, GenerationSettings, generate_chat


@CHAT_ENGINES.register("hf")
class HFChatEngine(ChatEngine):
    """Answers with an ``llm:`` node built exactly as the LALM builds its backbone, or with an exported LALM.

    Args:
        llm: the LLM config node (``{name: hf_causal_lm, model_path: ..., dtype: ...}``); self-generation
            passes the node the model trains on, so the targets are the backbone's own.
        model_dir: an exported (or trained) LALM directory, instead of ``llm``; its conversations carry audio.
        generation: decoding settings (see GenerationSettings), over the export's own ``generation:``.
        device: ``cpu``, ``cuda``, ``cuda:1`` ...
        batch_size: conversations per ``generate`` call (null: each call's conversations as one batch).
        model_overrides: ``key=value`` overrides of the export's config (with ``model_dir`` only).
        transcriber: a TRANSCRIBERS node replacing the export's transcriber (with ``model_dir`` only).
    """

    def __init__(self, llm: dict[str, Any] | None = None, model_dir: str | None = None,
                 generation: dict[str, Any] | None = None, device: str = "cpu", batch_size: int | None = None,
                 model_overrides: list[str] | None = None, transcriber: dict[str, Any] | None = None):
        if (llm is None) == (model_dir is None):
            raise ConfigError("chat engine hf: give exactly one of llm (an LLM node) and model_dir (an exported LALM)")
        if model_dir is None and (model_overrides or transcriber is not None):
            raise ConfigError("chat engine hf: model_overrides and transcriber apply to an export; give model_dir")
        self.batch_size, self.llm_config, self.model = batch_size, llm, None
        if llm is not None:
            from toolkit.models.llms import LLMS

            self.llm = LLMS.build(llm, "llm").to(device).eval()
            self.settings = GenerationSettings(**(generation or {}))
            return
        from toolkit.models.lalm import LALM

        model = LALM.from_pretrained(model_dir, overrides=model_overrides or [], device=device)
        if transcriber is not None:
            from toolkit.models.transcribers import TRANSCRIBERS

            model.transcriber = TRANSCRIBERS.build(transcriber, "transcriber").to(device)
        self._use_model(model, generation)

    @classmethod
    def around(cls, model: Any, generation: dict[str, Any] | None = None) -> HFChatEngine:
        """The engine for a LALM already in memory (a test's, or the perception controls' untrained one)."""
        engine = cls.__new__(cls)
        engine.batch_size, engine.llm_config = None, None
        engine._use_model(model, generation)
        return engine

    def _use_model(self, model: Any, generation: dict[str, Any] | None) -> None:
        self.model = model.eval()
        self.settings = GenerationSettings(**{**dict(model.config.get("generation") or {}), **dict(generation or {})})

    def generate(self, conversations: Sequence[Conversation], settings: GenerationSettings | None = None
                 ) -> list[Generation]:
        settings = settings or self.settings
        batch = self.batch_size or max(len(conversations), 1)
        if self.model is None:
            return generate_chat(self.llm, list(conversations), settings, batch_size=batch)
        out: list[Generation] = []
        for start in range(0, len(conversations), batch):
            details = self.model.generate([list(c) for c in conversations[start:start + batch]], generation=settings,
                                          return_details=True)
            out += [Generation(text=d["text"], num_tokens=d["num_tokens"], finish_reason=d["finish_reason"],
                               transcripts=list(d["transcripts"])) for d in details]
        return out

    def description(self) -> dict[str, Any]:
        source = {"llm": self.llm_config} if self.model is None else {"model": self.model.config.get("llm", {})}
        return {"backend": "hf", **source, "generation": self.settings.to_dict()}
