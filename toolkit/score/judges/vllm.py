"""``vllm`` judge: the same job as ``hf`` through vLLM's engine (the ``vllm`` chat engine)."""

from __future__ import annotations

from pathlib import Path

from toolkit.score.judges.base import JUDGES, JudgeError, LocalJudge


@JUDGES.register("vllm")
class VLLMJudge(LocalJudge):
    """A local model directory served by vLLM; greedy unless a protocol samples (then ``n`` answers per request).

    Args:
        model_path: local model directory.
        max_new_tokens: answer length limit.
        dtype: ``auto`` (float32 on the CPU, the checkpoint's dtype on a GPU), ``bfloat16``, ``float16`` or ``float32``.
        tensor_parallel_size: GPUs to shard the judge over.
        max_model_len: context length limit (``None``: the model's).
        gpu_memory_utilization: vLLM's share of GPU memory.
    """

    def __init__(self, model_path: str, max_new_tokens: int = 256, dtype: str = "auto",
                 tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9):
        from toolkit.models.chat_engines import CHAT_ENGINES
        from toolkit.models.loading import import_vllm

        import_vllm("the 'vllm' judge", "score.judge.name: hf")
        if not Path(model_path).expanduser().is_dir():
            raise JudgeError(f"score.judge.model_path: '{model_path}' is not a local directory")
        self.model_path = str(Path(model_path).expanduser())
        self.engine = CHAT_ENGINES.build({"name": "vllm", "llm": {"name": "hf_causal_lm", "model_path": self.model_path},
                                          "generation": {"max_new_tokens": max_new_tokens, "do_sample": False},
                                          "dtype": dtype, "tensor_parallel_size": tensor_parallel_size,
                                          "gpu_memory_utilization": gpu_memory_utilization,
                                          "max_model_len": max_model_len}, "score.judge")

    @property
    def name(self) -> str:
        return f"vllm:{Path(self.model_path).name}"
