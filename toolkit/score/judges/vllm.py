"""``vllm`` judge: the same job as ``hf`` through vLLM's engine (the ``vllm`` self-generation backend's)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from toolkit.score.judges.base import JUDGES, Conversation, Judge, JudgeError, JudgeProtocol


@JUDGES.register("vllm")
class VLLMJudge(Judge):
    """A local model directory served by vLLM; greedy unless a protocol samples.

    Args:
        model_path: local model directory.
        max_new_tokens: answer length limit.
        dtype: ``auto``, ``bfloat16``, ``float16`` or ``float32``.
        tensor_parallel_size: GPUs to shard the judge over.
        max_model_len: context length limit (``None``: the model's).
        gpu_memory_utilization: vLLM's share of GPU memory.
    """

    def __init__(self, model_path: str, max_new_tokens: int = 256, dtype: str = "auto",
                 tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9):
        from toolkit.models.loading import import_vllm
        from toolkit.selfgen.backends.vllm import VLLMBackend

        import_vllm("the 'vllm' judge", "score.judge.name: hf")
        if not Path(model_path).expanduser().is_dir():
            raise JudgeError(f"score.judge.model_path: '{model_path}' is not a local directory")
        self.model_path = str(Path(model_path).expanduser())
        self.max_new_tokens = max_new_tokens
        self.backend = VLLMBackend(self.model_path, generation={"max_new_tokens": max_new_tokens, "do_sample": False},
                                   dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                                   gpu_memory_utilization=gpu_memory_utilization,
                                   max_model_len=max_model_len)

    @property
    def name(self) -> str:
        return f"vllm:{Path(self.model_path).name}"

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        return [g.text for g in self.backend.generate(conversations)]

    def sample(self, conversations: Sequence[Conversation], protocol: JudgeProtocol) -> list[list[str]]:
        """``protocol.samples`` answers per conversation in one vLLM request each (``n``), seeded, with the
        protocol's temperature, top_p and max_tokens (unset ones: top_p 1 and this judge's ``max_new_tokens``).
        A protocol that does not sample (temperature 0 or unset) gets the greedy answer."""
        if not protocol.sampled:
            return super().sample(conversations, protocol)
        from toolkit.models.loading import import_vllm

        vllm = import_vllm("the 'vllm' judge", "score.judge.name: hf")
        params = vllm.SamplingParams(n=protocol.samples, temperature=protocol.temperature,
                                     top_p=1.0 if protocol.top_p is None else protocol.top_p,
                                     max_tokens=protocol.max_tokens or self.max_new_tokens, seed=protocol.seed)
        outputs = self.backend.engine.chat([list(c) for c in conversations], params, use_tqdm=False)
        return [[o.text.strip() for o in out.outputs] for out in outputs]
