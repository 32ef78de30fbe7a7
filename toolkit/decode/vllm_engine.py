"""Decoding through vLLM: the exported LALM runs inside vLLM's engine via our vLLM plugin (an entry point).

Same interface as ``LALM.generate(conversations, generation, return_details=True)``, so the decode stage
swaps engines with ``decode.backend: vllm``. Transcripts are written here (the export's own transcriber,
a given text wins) and handed to the plugin, so every output row records the transcript it used, as with
the ``hf`` backend. Greedy fp32 answers equal ``LALM.generate`` token for token (test/test_serve_vllm.py);
bf16 is faster and may differ in late tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.audio import SAMPLE_RATE
from toolkit.models.generation import GenerationSettings


class VLLMEngine:
    """An exported model served by vLLM's offline engine.

    Args:
        model_dir: a vLLM-ready export directory (``config.yaml``, ``model.safetensors`` and what the export
            stage adds for vLLM: ``config.json``, the tokenizer, ``chat_template.jinja``); ``python -m
            toolkit.bin.decode`` makes a trained model's directory ready before building this.
        dtype: ``auto`` (float32 on the CPU, equal to the hf backend token for token; the export's
            ``llm.dtype`` on a GPU), or ``float32``, ``bfloat16``, ``float16``.
        max_model_len: context vLLM reserves per sequence.
        gpu_memory_utilization: KV-cache share of GPU memory (of system RAM on CPU: keep it modest there).
        max_audios_per_prompt: ``limit_mm_per_prompt`` for audio.
    """

    def __init__(self, model_dir: str | Path, dtype: str = "auto", max_model_len: int = 2048,
                 gpu_memory_utilization: float = 0.3, max_audios_per_prompt: int = 2):
        from toolkit.models.loading import import_vllm, vllm_dtype

        vllm = import_vllm("decode.backend=vllm", "decode.backend=hf")
        from toolkit.config import load_config, to_container
        from toolkit.models.chat import build_formatter
        from toolkit.models.transcribers import TRANSCRIBERS

        self._vllm = vllm
        root = Path(model_dir)
        missing = [name for name in ("config.json", "chat_template.jinja") if not (root / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{root} is not vLLM-ready (no {', '.join(missing)}): export it (./run.sh --stage 8) "
                                    f"or decode with python -m toolkit.bin.decode, which prepares the directory")
        cfg = to_container(load_config(root / "config.yaml"))
        self.formatter, _ = build_formatter(cfg)
        self.transcriber = TRANSCRIBERS.build(cfg["transcriber"], "transcriber")
        self.defaults = dict(cfg.get("generation") or {})
        self.dtype = vllm_dtype(dtype, (cfg.get("llm") or {}).get("dtype"))
        self.engine = vllm.LLM(model=str(root), dtype=self.dtype, max_model_len=max_model_len, seed=0,
                               gpu_memory_utilization=gpu_memory_utilization,
                               limit_mm_per_prompt={"audio": max_audios_per_prompt})

    def generate(self, conversations: Sequence[Sequence[Mapping[str, Any]]], generation: Mapping[str, Any] | None = None,
                 return_details: bool = True) -> list[Any]:
        """Answer a batch of conversations whose audios are 16 kHz arrays (as the decode stage passes them)."""
        settings = GenerationSettings(**{**self.defaults, **dict(generation or {})})
        requests, all_transcripts = [], []
        for conv in conversations:
            audios = [a for m in conv for a in (m.get("audios") or [])]
            waves = [np.asarray(a["audio"], dtype=np.float32) for a in audios]
            transcripts = self.transcriber.transcribe(waves, [a.get("text") for a in audios])
            all_transcripts.append(transcripts)
            requests.append({"prompt": self.formatter.render_prompt(conv),
                             "multi_modal_data": {"audio": [(w, SAMPLE_RATE) for w in waves]},
                             "mm_processor_kwargs": {"transcripts": transcripts}})
        params = self._vllm.SamplingParams(**settings.vllm_kwargs())
        outs = self.engine.generate(requests, params, use_tqdm=False)
        details = [{"text": o.outputs[0].text.strip(), "transcripts": t, "num_tokens": len(o.outputs[0].token_ids),
                    "finish_reason": "length" if o.outputs[0].finish_reason == "length" else "stop"}
                   for o, t in zip(outs, all_transcripts, strict=True)]
        return details if return_details else [d["text"] for d in details]
