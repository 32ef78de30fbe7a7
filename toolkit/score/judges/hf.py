"""``hf`` judge: a local transformers causal LM, its own chat template, batched; greedy unless a protocol samples."""

from __future__ import annotations

from pathlib import Path

from toolkit.score.judges.base import JUDGES, Conversation, JudgeError, LocalJudge


@JUDGES.register("hf")
class HFJudge(LocalJudge):
    """A local Hugging Face causal LM directory used as a judge, through the ``hf`` chat engine.

    Args:
        model_path: local model directory (weights + tokenizer with a chat template).
        batch_size: conversations per ``generate`` call (left padding).
        max_new_tokens: answer length limit.
        dtype: ``float32`` (matches other back-ends token for token), ``bfloat16`` (faster on CPU) or ``float16``.
        device: ``cpu``, ``cuda``, ``cuda:1`` ...
    """

    def __init__(self, model_path: str, batch_size: int = 8, max_new_tokens: int = 256,
                 dtype: str = "float32", device: str = "cpu"):
        from toolkit.models.chat_engines import CHAT_ENGINES
        from toolkit.models.loading import check_model_path

        path = check_model_path(model_path, "score.judge.model_path")
        if not Path(path).is_dir():
            raise JudgeError(f"score.judge.model_path: '{model_path}' is not a local directory; "
                             "the hf judge never downloads")
        if dtype not in ("float32", "bfloat16", "float16"):
            raise JudgeError(f"score.judge.dtype: {dtype!r} is not one of float32, bfloat16, float16")
        self.model_path = path
        self.engine = CHAT_ENGINES.build({"name": "hf", "llm": {"name": "hf_causal_lm", "model_path": path, "dtype": dtype},
                                          "generation": {"max_new_tokens": max_new_tokens, "do_sample": False},
                                          "device": device, "batch_size": batch_size}, "score.judge")

    @property
    def name(self) -> str:
        return f"hf:{Path(self.model_path).name}"

    def prepare(self, conversation: Conversation) -> Conversation:
        """Templates that refuse a system turn (Gemma, Mistral) get it folded into the first user turn."""
        try:
            self.engine.llm.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            return conversation
        except Exception:  # jinja raises TemplateError with the template's own message
            system = "\n\n".join(m["content"] for m in conversation if m["role"] == "system")
            rest = [dict(m) for m in conversation if m["role"] != "system"]
            if system and rest:
                rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
            return rest
