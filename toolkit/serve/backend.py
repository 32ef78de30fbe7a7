"""The model behind the HTTP server.

``HFBackend`` runs ``LALM.generate`` (the one generation path) in-process on an exported model;
the server's batcher calls ``generate`` from its single worker thread. The ``vllm`` backend is
not a class here: it is vLLM's own OpenAI server with our plugin and request middleware
(``toolkit.serve.vllm_plugin``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def missing_transcript_problem(transcriber: Any, conversation: Sequence[dict[str, Any]]) -> str | None:
    """Why ``transcriber`` cannot answer ``conversation`` (a ``given`` one and an audio without text), or None."""
    from toolkit.models.transcribers.given import GivenTranscriber

    if not isinstance(transcriber, GivenTranscriber) or transcriber.missing != "error":
        return None
    for i, m in enumerate(conversation):
        for a in m.get("audios") or []:
            if a.get("text") is None:
                return (f"messages[{i}]: this model has no ASR (transcriber 'given') and the audio has no transcript; "
                        f"add 'transcript' to the input_audio object")
    return None


class HFBackend:
    """An exported LALM answering batches of conversations.

    Args:
        model: a built ``LALM`` (eval mode).
        name: the model id clients send (``/v1/models`` lists it).
    """

    def __init__(self, model: Any, name: str):
        self.model, self.name = model, name

    @classmethod
    def from_export(cls, export_dir: str | Path, name: str | None = None, device: str = "cpu",
                    overrides: Sequence[str] = ()) -> "HFBackend":
        """Load ``export_dir`` (written by the export stage); the id defaults to the folder name."""
        from toolkit.models.lalm import LALM

        model = LALM.from_pretrained(export_dir, overrides=overrides, device=device)
        return cls(model, name or Path(export_dir).resolve().name)

    @property
    def default_generation(self) -> dict[str, Any]:
        """The export's own ``generation:`` settings; request fields override them."""
        return dict(self.model.config.get("generation") or {})

    def missing_transcript_problem(self, conversation: Sequence[dict[str, Any]]) -> str | None:
        """Why a conversation cannot be answered without transcripts (a ``given`` transcriber), or None."""
        return missing_transcript_problem(self.model.transcriber, conversation)

    def generate(self, conversations: Sequence[list[dict[str, Any]]], generation: dict[str, Any]) -> list[dict[str, Any]]:
        """Answers with ``text``, ``transcripts``, ``finish_reason``, ``num_tokens`` and ``prompt_tokens``.

        ``prompt_tokens`` counts the text and transcript tokens of the prompt; the audio vectors
        spliced in beside them are not tokens and are not counted.
        """
        settings = {**self.default_generation, **generation}
        details = self.model.generate(list(conversations), generation=settings, return_details=True)
        for conv, d in zip(conversations, details):
            d["prompt_tokens"] = len(self.model.formatter.encode(conv, d["transcripts"]).input_ids)
        return details
