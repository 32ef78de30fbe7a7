"""``hf`` judge: a local transformers causal LM, its own chat template, batched; greedy unless a protocol samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from toolkit.score.judges.base import JUDGES, Conversation, Judge, JudgeError, JudgeProtocol


@JUDGES.register("hf")
class HFJudge(Judge):
    """A local Hugging Face causal LM directory used as a judge.

    Args:
        model_path: local model directory (weights + tokenizer with a chat template).
        batch_size: conversations per ``generate`` call (left padding).
        max_new_tokens: answer length limit.
        dtype: ``float32`` (matches other back-ends token for token), ``bfloat16`` (faster on CPU) or ``float16``.
        device: ``cpu``, ``cuda``, ``cuda:1`` ...
    """

    def __init__(self, model_path: str, batch_size: int = 8, max_new_tokens: int = 256,
                 dtype: str = "float32", device: str = "cpu"):
        from toolkit.models.generation import GenerationSettings
        from toolkit.models.llms import LLMS
        from toolkit.models.loading import check_model_path

        path = check_model_path(model_path, "score.judge.model_path")
        if not Path(path).is_dir():
            raise JudgeError(f"score.judge.model_path: '{model_path}' is not a local directory; "
                             "the hf judge never downloads")
        if dtype not in ("float32", "bfloat16", "float16"):
            raise JudgeError(f"score.judge.dtype: {dtype!r} is not one of float32, bfloat16, float16")
        self.model_path = path
        self.batch_size = batch_size
        llm = LLMS.build({"name": "hf_causal_lm", "model_path": path, "dtype": dtype}, "score.judge")
        self.llm = llm.to(device).eval()
        self.settings = GenerationSettings(max_new_tokens=max_new_tokens, do_sample=False)

    @property
    def name(self) -> str:
        return f"hf:{Path(self.model_path).name}"

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        """Greedy answers through the toolkit's one generation path (left padding, KV cache)."""
        from toolkit.models.generation import generate_chat

        prepared = [self._fold_system_if_refused(c) for c in conversations]
        return [g.text for g in generate_chat(self.llm, prepared, self.settings, batch_size=self.batch_size)]

    def sample(self, conversations: Sequence[Conversation], protocol: JudgeProtocol) -> list[list[str]]:
        """``protocol.samples`` answers per conversation, sampled in one batch (each copy draws its own tokens)
        with the protocol's temperature, top_p and max_tokens (unset top_p: 1; unset max_tokens: this judge's
        ``max_new_tokens``).  Sampling is seeded with ``protocol.seed``, so a rerun gives the same
        answers.  A protocol that does not sample (temperature 0 or unset) gets the greedy answer."""
        if not protocol.sampled:
            return super().sample(conversations, protocol)
        from dataclasses import replace

        from toolkit.models.generation import generate_chat

        settings = replace(self.settings, do_sample=True, temperature=protocol.temperature,
                           top_p=1.0 if protocol.top_p is None else protocol.top_p,
                           max_new_tokens=protocol.max_tokens or self.settings.max_new_tokens, seed=protocol.seed)
        n = protocol.samples
        prepared = [self._fold_system_if_refused(c) for c in conversations for _ in range(n)]
        texts = [g.text for g in generate_chat(self.llm, prepared, settings, batch_size=self.batch_size)]
        return [texts[i * n:(i + 1) * n] for i in range(len(conversations))]

    def _fold_system_if_refused(self, conversation: Conversation) -> Conversation:
        """Templates that refuse a system turn (Gemma, Mistral) get it folded into the first user turn."""
        try:
            self.llm.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            return conversation
        except Exception:  # jinja raises TemplateError with the template's own message
            system = "\n\n".join(m["content"] for m in conversation if m["role"] == "system")
            rest = [dict(m) for m in conversation if m["role"] != "system"]
            if system and rest:
                rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
            return rest
