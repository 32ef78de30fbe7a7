"""Any Hugging Face ``AutoModelForCausalLM`` as the backbone (Llama, Qwen2/3, Gemma, Mistral, SmolLM2, GPT-2).

Frozen by default, loaded in ``dtype`` (bf16 by default: the reference keeps the LLM in bf16 and
the adapter in fp32), with optional LoRA through peft. Its own chat template formats every prompt;
a model without one (GPT-2) gets a plain ``role: text`` template.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

import torch

from toolkit.models.llms.base import LLMS, LanguageModel
from toolkit.models.loading import check_model_path, resolve_config_dict, weights_enabled

PLAIN_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)

# ``llm.lora`` keys a config leaves out (the vLLM plugin merges with the same alpha / r).
LORA_DEFAULTS: dict[str, Any] = {"r": 16, "alpha": 16, "dropout": 0.1, "target_modules": ["q_proj", "k_proj", "v_proj"]}

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated.

    Measured on a 2-core AMD EPYC (Zen 2, AVX2 only): batched SmolLM2 generation took 87.5 s in bf16
    against 14.9 s in fp32 (16 prompts x 16 tokens), so ``auto`` must not pick bf16 there.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


ROUND_TRIP_SENTENCE = "Describe the audio file."


def check_tokenizer_round_trip(tokenizer: Any, path: str) -> None:
    """Refuse a tokenizer that does not give back a plain English sentence (spaces included).

    Seen with transformers 5: a folder whose ``tokenizer_config.json`` names ``LlamaTokenizer`` but
    whose ``tokenizer.json`` is byte-level BPE (Llama-3 copies) loads without error and drops every
    space ("Describetheaudiofile."), so prompts, transcripts and targets would all be mis-tokenized.
    """
    ids = tokenizer(ROUND_TRIP_SENTENCE, add_special_tokens=False)["input_ids"]
    back = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).strip()
    if back == ROUND_TRIP_SENTENCE:
        return
    from pathlib import Path

    config = Path(path) / "tokenizer_config.json"
    named = None
    if config.is_file():
        import json

        named = json.loads(config.read_text()).get("tokenizer_class")
    raise ValueError(
        f"llm: the tokenizer in {path} ({type(tokenizer).__name__}) does not round-trip text: {ROUND_TRIP_SENTENCE!r} "
        f"comes back as {back!r}. {config} names tokenizer_class {named!r}, which this transformers version applies "
        f"over a tokenizer.json of another kind (a byte-level BPE tokenizer.json read as SentencePiece "
            f"loses its spaces). "
        f"Fix: set \"tokenizer_class\": \"PreTrainedTokenizerFast\" in {config} (it then loads tokenizer.json exactly "
        f"as written), or point llm.model_path at a folder whose tokenizer files agree."
    )


def load_tokenizer(model_path: str, chat_template: str | None = None) -> Any:
    """The backbone's tokenizer as every prompt is built with it: checked, left padding, pad = eos when it has none,
    ``chat_template`` (else its own, else a plain ``role: text`` one)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    check_tokenizer_round_trip(tokenizer, model_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:  # Llama-3 and GPT-2 ship no pad token: pad = eos
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return tokenizer


def resolve_dtype(name: str) -> torch.dtype:
    """``auto``: bf16 on a CUDA GPU with bf16 (fp16 on older ones) or a CPU with native bf16, else fp32."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"llm.dtype: unknown dtype '{name}'; use one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


@LLMS.register("hf_causal_lm")
class HFCausalLM(LanguageModel):
    """A causal LM from a local directory or hub id.

    Args:
        model_path: local HF directory (``${cache:}/models/smollm2-135m-instruct``) or hub id.
        preset: packaged architecture name, used instead of ``model_path/config.json`` when
            building on the meta device (``inspect``) without weights.
        dtype: weight dtype: ``bfloat16`` (default), ``float32``, ``float16`` or ``auto``.
        frozen: freeze every base weight (LoRA weights, if any, stay trainable).
        lora: ``{r, alpha, dropout, target_modules}`` to add peft LoRA adapters; null for none.
        attn_implementation: ``sdpa`` (default), ``eager``, ``flex_attention`` (block-sparse
            packed rows; its backward runs on GPUs only) or ``flash_attention_2`` (needs
            flash-attn); passed to transformers.
        gradient_checkpointing: trade compute for activation memory in the LLM.
        chat_template: a Jinja template overriding the tokenizer's (null keeps the tokenizer's).
    """

    def __init__(
        self,
        model_path: str | None = None,
        preset: str | None = None,
        dtype: str = "bfloat16",
        frozen: bool = True,
        lora: dict[str, Any] | None = None,
        attn_implementation: str = "sdpa",
        gradient_checkpointing: bool = False,
        chat_template: str | None = None,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM

        torch_dtype = resolve_dtype(dtype)
        if weights_enabled():
            path = check_model_path(model_path, "llm")
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, attn_implementation=attn_implementation)
            self.tokenizer = load_tokenizer(path, chat_template)
        else:  # meta-device build for inspect: architecture only
            arch = resolve_config_dict(model_path, preset, "llm")
            config = AutoConfig.for_model(**arch)
            self.model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype, attn_implementation=attn_implementation)
            self.tokenizer = None
        self.hidden_size = int(self.model.config.hidden_size if hasattr(self.model.config, "hidden_size") else self.model.config.n_embd)
        self.eos_token_ids = self._eos_ids()
        if frozen:
            for p in self.model.parameters():
                p.requires_grad_(False)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
            self.model.config.use_cache = False
        if lora:
            self._add_lora(lora)

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        if self.tokenizer is not None and self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for i in [gen_eos] if isinstance(gen_eos, int) else (gen_eos or []):
            if i not in ids:
                ids.append(int(i))
        return ids

    def _add_lora(self, lora: dict[str, Any]) -> None:
        from peft import LoraConfig, get_peft_model

        allowed = set(LORA_DEFAULTS)
        unknown = set(lora) - allowed
        if unknown:
            raise ValueError(f"llm.lora: unknown keys {sorted(unknown)}; valid keys: {sorted(allowed)}")
        lora = {**LORA_DEFAULTS, **lora}
        config = LoraConfig(r=int(lora["r"]), lora_alpha=int(lora["alpha"]), lora_dropout=float(lora["dropout"]),
                            target_modules=list(lora["target_modules"]), bias="none")
        self.model = get_peft_model(self.model, config)
        # LoRA weights train in fp32 even when the frozen base is bf16 (stable optimizer updates).
        for name, p in self.model.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()

    def _base(self):
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def dtype(self) -> torch.dtype:
        return self._base().get_input_embeddings().weight.dtype

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._base().get_input_embeddings()(input_ids)

    @property
    def lm_head(self) -> torch.nn.Module:
        return self._base().get_output_embeddings()

    @property
    def attn_implementation(self) -> str:
        return str(getattr(self._base().config, "_attn_implementation", None) or "eager")

    def decoder_hidden_states(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None,
                              position_ids: torch.Tensor) -> torch.Tensor:
        decoder = self._base().get_decoder()
        out = decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state

    def train(self, mode: bool = True) -> "HFCausalLM":
        # A frozen LLM without LoRA stays in eval mode: dropout off, as the frozen reference does.
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.model.parameters()):
            self.model.eval()
        return self
