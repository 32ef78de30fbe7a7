"""The LALM inside vLLM: processor (prompt + transcripts) and model (encoder + adapter + vLLM's LLM).

Token-for-token equality with ``LALM.generate`` rests on building the *same* prompt ids:

- vLLM hands the processor the prompt already tokenized as one string. Our ``ChatFormatter``
  tokenizes the text between audios piece by piece and appends each transcript's own ids, which
  can differ from tokenizing the whole string. So ``DestaProcessor.apply`` decodes the ids back to
  text (lossless for the byte-level BPE tokenizers we use), wraps every ``<|AUDIO|>`` in the
  audio tags, and tokenizes exactly as ``ChatFormatter.encode`` does: piece ids, then ``N``
  placeholder ids (the audio vectors' slots), then the transcript ids, for each audio.
- Transcripts come from ``mm_processor_kwargs={"transcripts": [...]}`` (None entries, or no key:
  the export's transcriber decides, e.g. Whisper), as ``given`` texts do in ``generate``.
- Only the ``N`` placeholder positions are multimodal; the transcript is plain text.

The model runs our own encoder and adapter modules (built from the export's config.yaml, weights
from their files and ``model.safetensors``) and the LLM as vLLM's registered implementation of
the backbone's architecture, its weights read from ``llm.model_path`` (a secondary weight source).
Each audio is encoded on its own, as ``generate`` does for a single-audio request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
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

from toolkit.audio import SAMPLE_RATE
from toolkit.models.chat import AUDIO_TOKEN, ChatFormatter
from toolkit.serve.vllm_plugin.prepare import UnsupportedExportError, audio_vectors_per_clip



def load_export_config(export_dir: str | Path) -> dict[str, Any]:
    """The export's resolved ``config.yaml`` as plain containers."""
    from toolkit.config import load_config, to_container

    return to_container(load_config(Path(export_dir) / "config.yaml"))


def build_formatter(cfg: Mapping[str, Any]) -> tuple[ChatFormatter, int]:
    """The export's ``ChatFormatter`` and placeholder id, set up as ``HFCausalLM`` + ``LALM`` do."""
    from transformers import AutoTokenizer

    from toolkit.models.llms.hf_causal_lm import PLAIN_CHAT_TEMPLATE

    llm, lalm = cfg["llm"], dict(cfg.get("lalm") or {})
    tokenizer = AutoTokenizer.from_pretrained(str(llm["model_path"]))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if llm.get("chat_template") is not None:
        tokenizer.chat_template = llm["chat_template"]
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    formatter = ChatFormatter(
        tokenizer=tokenizer, eos_token_id=int(tokenizer.eos_token_id),
        **{k: lalm[k] for k in ("audio_start", "audio_end", "transcript_max_tokens", "use_transcript", "system_prompt") if k in lalm},
    )
    token = lalm.get("placeholder_token")
    placeholder = int(tokenizer.pad_token_id) if token is None else int(tokenizer.convert_tokens_to_ids(token))
    return formatter, placeholder


def render_prompt(formatter: ChatFormatter, messages: Sequence[Mapping[str, Any]]) -> str:
    """The prompt text vLLM should get for ``messages`` (chat template, system prompt, ``<|AUDIO|>`` kept)."""
    formatter.count_audios(messages)
    return formatter._render(messages, add_generation_prompt=True)


class DestaProcessingInfo(BaseProcessingInfo):
    """Everything the processor needs from the export (config, formatter, transcriber)."""

    @cached_property
    def export_config(self) -> dict[str, Any]:
        return load_export_config(self.ctx.model_config.model)

    @cached_property
    def formatter_and_placeholder(self) -> tuple[ChatFormatter, int]:
        return build_formatter(self.export_config)

    @cached_property
    def transcriber(self) -> Any:
        from toolkit.models.transcribers import TRANSCRIBERS

        return TRANSCRIBERS.build(self.export_config["transcriber"], "transcriber")

    @property
    def num_vectors(self) -> int:
        return audio_vectors_per_clip(self.export_config)

    def get_data_parser(self) -> MultiModalDataParser:
        return MultiModalDataParser(target_sr=SAMPLE_RATE, target_channels=1,
                                    expected_hidden_size=self._get_expected_hidden_size(),
                                    allow_missing_mm_embeddings=self.allow_missing_mm_embeddings)

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"audio": None}

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return {"audio": self.num_vectors}

    def get_default_tok_params(self):
        return super().get_default_tok_params().with_kwargs(add_special_tokens=False)


class DestaDummyInputsBuilder(BaseDummyInputsBuilder[DestaProcessingInfo]):
    """Profiling inputs: one 30 s silent clip per audio slot."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return AUDIO_TOKEN * mm_counts.get("audio", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int],
                          mm_options: Mapping[str, MultiModalDummyOptions]) -> MultiModalDataDict:
        return {"audio": self._get_dummy_audios(length=30 * SAMPLE_RATE, num_audios=mm_counts.get("audio", 0),
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
        formatter, placeholder = self.info.formatter_and_placeholder
        tokenizer = formatter.tokenizer
        text = tokenizer.decode(inputs.prompt, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        tagged = f"{formatter.audio_start}{AUDIO_TOKEN}{formatter.audio_end}"
        pieces = text.replace(tagged, AUDIO_TOKEN).split(AUDIO_TOKEN)
        n_audios = len(pieces) - 1
        pieces = [p if k == 0 else formatter.audio_end + p for k, p in enumerate(pieces)]
        pieces = [p + formatter.audio_start if k < n_audios else p for k, p in enumerate(pieces)]

        items = inputs.mm_data_items
        waves = [np.asarray(items["audio"].get(i), dtype=np.float32) for i in range(items["audio"].get_count())] if "audio" in items else []
        if len(waves) != n_audios:
            raise ValueError(f"the prompt has {n_audios} {AUDIO_TOKEN} placeholder(s) but {len(waves)} audio(s) were given; "
                             f"put one {AUDIO_TOKEN} in the text where each audio goes")
        given = list(inputs.hf_processor_mm_kwargs.get("transcripts") or [None] * n_audios)
        if len(given) != n_audios:
            raise ValueError(f"mm_processor_kwargs.transcripts has {len(given)} entries for {n_audios} audios")
        # Given transcripts (the decode stage, our server's middleware) skip loading the ASR model here.
        transcripts = given if all(t is not None for t in given) else self.info.transcriber.transcribe(waves, given)

        n = self.info.num_vectors
        ids: list[int] = []
        ranges = []
        for k, piece in enumerate(pieces):
            ids += formatter._ids(piece)
            if k < n_audios:
                ranges.append(PlaceholderRange(offset=len(ids), length=n))
                ids += [placeholder] * n + formatter.transcript_ids(transcripts[k])
        data = BatchFeature({"waveform": [torch.from_numpy(w) for w in waves]}) if waves else BatchFeature()
        mm_kwargs = MultiModalKwargsItems.from_hf_inputs(data, self._get_mm_fields_config(data, inputs.hf_processor_mm_kwargs))
        return mm_input(prompt_token_ids=ids, mm_kwargs=mm_kwargs, mm_hashes=self._get_mm_hashes(inputs),
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
        self.num_vectors = audio_vectors_per_clip(cfg)
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
        extract = self.encoder.feature_extractor()
        device = next(self.adapter.parameters()).device
        out = []
        for wave in waves:
            feats = {k: v.to(device) for k, v in extract([wave.detach().cpu().float().numpy()]).items()}
            enc = self.encoder(**feats)
            adapter_dtype = next(self.adapter.parameters()).dtype
            vectors, lengths = self.adapter([h.to(adapter_dtype) for h in enc.hidden_states], enc.lengths)
            out.append(vectors[0, : int(lengths[0])].to(self.llm_dtype))
        return out

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
