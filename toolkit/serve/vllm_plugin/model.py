"""The LALM inside vLLM: processor (prompt + transcripts) and model (encoder + adapter + vLLM's LLM).

The processor and the audio embedding are thin wrappers over :mod:`toolkit.serve.vllm_plugin.processing`
(vLLM-free, tested against ``LALM`` without vLLM), which builds the prompt ids and encodes the audio
with the functions ``LALM.generate`` uses; see that module for how token-for-token equality is kept.
Only the placeholder positions are multimodal, one per declared audio vector; the transcript is plain text.

The model runs our own encoder and adapter modules (built from the export's config.yaml, weights
from their files and ``model.safetensors``) and the LLM as vLLM's registered implementation of
the backbone's architecture, its weights read from ``llm.model_path`` (a secondary weight source).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import BatchFeature

from vllm.config import VllmConfig
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.inputs import MultiModalDataDict, mm_input
from vllm.model_executor.model_loader import DefaultModelLoader
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal
from vllm.model_executor.models.utils import init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems, PlaceholderRange
from vllm.multimodal.parse import MultiModalDataParser
from vllm.multimodal.processing import BaseDummyInputsBuilder, BaseMultiModalProcessor, BaseProcessingInfo
from vllm.sequence import IntermediateTensors

from toolkit.models.chat import AUDIO_TOKEN
from toolkit.serve.vllm_plugin.prepare import UnsupportedExportError
from toolkit.serve.vllm_plugin.processing import (SAMPLE_RATE, PromptProcessor, build_formatter, embed_audios,
                                                  load_export_config)


class DestaProcessingInfo(BaseProcessingInfo):
    """Everything the processor needs from the export (config, formatter, vector counts, transcriber)."""

    @cached_property
    def processor(self) -> PromptProcessor:
        return PromptProcessor(load_export_config(self.ctx.model_config.model))

    def get_data_parser(self) -> MultiModalDataParser:
        return MultiModalDataParser(target_sr=SAMPLE_RATE, target_channels=1,
                                    expected_hidden_size=self._get_expected_hidden_size(),
                                    allow_missing_mm_embeddings=self.allow_missing_mm_embeddings)

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"audio": None}

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return {"audio": self.processor.max_vectors_per_audio()}

    def get_default_tok_params(self):
        return super().get_default_tok_params().with_kwargs(add_special_tokens=False)


class DestaDummyInputsBuilder(BaseDummyInputsBuilder[DestaProcessingInfo]):
    """Profiling inputs: one silent clip per audio slot, as long as needed for the most audio vectors."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return AUDIO_TOKEN * mm_counts.get("audio", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int],
                          mm_options: Mapping[str, MultiModalDummyOptions]) -> MultiModalDataDict:
        length = int(self.info.processor.profile_seconds() * SAMPLE_RATE)
        return {"audio": self._get_dummy_audios(length=length, num_audios=mm_counts.get("audio", 0),
                                                overrides=mm_options.get("audio"))}


class DestaProcessor(BaseMultiModalProcessor[DestaProcessingInfo]):
    """Prompt ids as ``ChatFormatter.encode`` + ``LALM.assemble`` build them (see module docstring)."""

    def _get_mm_fields_config(self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]) -> Mapping[str, MultiModalFieldConfig]:
        return {"waveform": MultiModalFieldConfig.batched("audio")}

    def get_dummy_inputs(self, seq_len, mm_counts, mm_options):
        # Profiling clips are silence: give them empty transcripts instead of running ASR (or
        # failing, with a ``given`` transcriber).
        inputs = super().get_dummy_inputs(seq_len, mm_counts, mm_options)
        return dataclasses.replace(inputs, hf_processor_mm_kwargs={"transcripts": [""] * mm_counts.get("audio", 0)})

    def _get_prompt_updates(self, mm_items, hf_processor_mm_kwargs, out_mm_kwargs):
        return []  # never used: ``apply`` builds the prompt ids and placeholder ranges itself

    def apply(self, inputs, timing_ctx):  # noqa: D102 (see the class docstring)
        items = inputs.mm_data_items
        waves = [items["audio"].get(i) for i in range(items["audio"].get_count())] if "audio" in items else []
        out = self.info.processor.process(inputs.prompt, waves, inputs.hf_processor_mm_kwargs.get("transcripts"))
        ranges = [PlaceholderRange(offset=offset, length=length) for offset, length in out.placeholders]
        waveforms = [torch.from_numpy(w) for w in out.waveforms]
        data = BatchFeature({"waveform": waveforms}) if waveforms else BatchFeature()
        mm_kwargs = MultiModalKwargsItems.from_hf_inputs(data, self._get_mm_fields_config(data, inputs.hf_processor_mm_kwargs))
        return mm_input(prompt_token_ids=out.prompt_token_ids, mm_kwargs=mm_kwargs,
                        mm_hashes=self._get_mm_hashes(inputs),
                        mm_placeholders={"audio": ranges} if ranges else {})


@MULTIMODAL_REGISTRY.register_processor(DestaProcessor, info=DestaProcessingInfo, dummy_inputs=DestaDummyInputsBuilder)
class DestaLALMForConditionalGeneration(nn.Module, SupportsMultiModal):
    """Our encoder + adapter (from the export) feeding vLLM's implementation of the backbone."""

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("audio"):
            return AUDIO_TOKEN
        raise ValueError(f"only audio inputs are supported, got {modality}")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        from toolkit.models.adapters import ADAPTERS
        from toolkit.models.adapters.base import adapter_runtime
        from toolkit.models.encoders import ENCODERS

        cfg = load_export_config(vllm_config.model_config.model)
        self.export_config = cfg
        self.llm_dtype = vllm_config.model_config.dtype
        # config.json is ours (toolkit/models/hf_auto.py); the backbone's own config is its text_config.
        text_config = vllm_config.model_config.hf_config.get_text_config()
        _, placeholder = build_formatter(cfg)
        self.configure_mm_token_handling(text_config.vocab_size, [placeholder])
        with self._mark_tower_model(vllm_config, "audio"):
            self.encoder = ENCODERS.build(cfg["encoder"], "encoder")  # loads its own frozen weights
            self.adapter = ADAPTERS.build(cfg["adapter"], "adapter",
                                          **adapter_runtime(cfg["adapter"], self.encoder, text_config.hidden_size))
        self.encoder.eval(), self.adapter.eval()
        with self._mark_language_model(vllm_config):
            # The LLM's own architecture (config.json carries ours so vLLM picks this class).
            llm_arch = _llm_architectures(cfg)
            self.language_model = init_vllm_registered_model(vllm_config=vllm_config, hf_config=text_config,
                                                             architectures=llm_arch, prefix=maybe_prefix(prefix, "language_model"))
        self.secondary_weights = [DefaultModelLoader.Source(model_or_path=str(cfg["llm"]["model_path"]), revision=None,
                                                            prefix="language_model.")]
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    @torch.no_grad()
    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        waves = kwargs.get("waveform")
        if waves is None:
            return []
        if isinstance(waves, torch.Tensor):
            waves = list(waves.unbind(0))
        arrays = [w.detach().cpu().float().numpy() for w in waves]
        return embed_audios(self.encoder, self.adapter, arrays, self.llm_dtype)

    def forward(self, input_ids: torch.Tensor | None, positions: torch.Tensor, intermediate_tensors: IntermediateTensors | None = None,
                inputs_embeds: torch.Tensor | None = None, **kwargs: object) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """``adapter.*`` (and LoRA pairs, merged) from the export, ``language_model.*`` from the LLM directory; the encoder loaded itself."""
        from toolkit.serve.vllm_plugin.lora import LoRAMerger

        adapter_state = self.adapter.state_dict()
        lora = LoRAMerger((self.export_config.get("llm") or {}).get("lora"))
        loaded: set[str] = set()

        def llm_weights():
            for name, tensor in weights:
                if name.startswith("adapter."):
                    key = name[len("adapter."):]
                    if key not in adapter_state:
                        raise KeyError(f"model.safetensors: {name} is not a weight of the configured adapter; was the export made with another adapter config?")
                    with torch.no_grad():
                        adapter_state[key].copy_(tensor.to(adapter_state[key].dtype))
                    loaded.add(name)
                elif name.startswith("language_model."):
                    key = name[len("language_model."):]
                    yield key, lora.merge(key, tensor)
                elif lora.take(name, tensor):
                    loaded.add(name)
                elif name.startswith("llm."):
                    raise UnsupportedExportError(f"model.safetensors: {name}: the export changed the LLM's own weights, which the "
                                                 f"vLLM plugin does not load; serve it with --backend hf")
                else:
                    raise KeyError(f"unexpected weight {name} (expected adapter.* in model.safetensors)")

        loaded |= {f"language_model.{n}" for n in self.language_model.load_weights(llm_weights())}
        lora.check_all_merged()
        missing = {f"adapter.{k}" for k in adapter_state} - loaded
        if missing:
            raise KeyError(f"model.safetensors lacks adapter weights {sorted(missing)[:5]}; re-run the export stage")
        loaded |= {f"encoder.{n}" for n, _ in self.encoder.named_parameters()}
        loaded |= {f"encoder.{n}" for n, _ in self.encoder.named_buffers()}
        return loaded


def _llm_architectures(cfg: Mapping[str, Any]) -> list[str]:
    import json

    path = Path(str(cfg["llm"]["model_path"])).expanduser() / "config.json"
    return list(json.loads(path.read_text())["architectures"])
