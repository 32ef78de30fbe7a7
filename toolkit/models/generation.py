"""The one generation path: self-generation, validation, decoding and serving all end here.

``generate_from_embeddings`` takes left-padded input embeddings (text tokens with audio vectors
already spliced in) and runs the backbone's own ``generate`` with a KV cache. Decoding settings
come from YAML (``generation:``), greedy by default, and are recorded with every output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class GenerationSettings:
    """Decoding settings (``generation:`` in YAML).

    Args:
        max_new_tokens: answer budget; an answer that hits it gets ``finish_reason: length``.
        do_sample: False (default) is greedy; the reference samples, we do not by default.
        temperature, top_p, top_k: sampling knobs (used only with ``do_sample``).
        num_beams: beam search width (1 = none).
        repetition_penalty: HF's repetition penalty (1.0 = off).
        seed: seeds sampling so a rerun reproduces it.
    """

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_beams: int = 1
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"generation.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise ValueError("generation.temperature must be > 0 with do_sample=true (use do_sample=false for greedy)")

    def hf_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                                  "num_beams": self.num_beams, "repetition_penalty": self.repetition_penalty}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:  # keep the model's generation_config sampling defaults from leaking into greedy runs
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def vllm_kwargs(self) -> dict[str, Any]:
        """The same decoding as vLLM ``SamplingParams`` fields (also its OpenAI server's request fields).

        Greedy is ``temperature=0`` there; vLLM has no beam search in ``SamplingParams``.
        """
        if self.num_beams != 1:
            raise ValueError(f"generation.num_beams={self.num_beams}: vLLM serves greedy or sampled decoding only; "
                             f"set num_beams=1 or use the hf backend")
        kwargs: dict[str, Any] = {"max_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty, "seed": self.seed}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or -1)
        else:
            kwargs.update(temperature=0.0, top_p=1.0, top_k=-1)
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Generation:
    """One answer: its text, token count, why it stopped (``stop`` or ``length``) and, for a conversation with
    audio, the transcript spliced after each of its audios (given or from the model's transcriber)."""

    text: str
    num_tokens: int
    finish_reason: str
    transcripts: list[str] = field(default_factory=list)


@torch.no_grad()
def generate_from_embeddings(
    llm: Any,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    settings: GenerationSettings,
) -> list[Generation]:
    """Run ``llm.model.generate`` on a left-padded batch and decode the new tokens."""
    tokenizer = llm.tokenizer
    eos_ids = list(llm.eos_token_ids)
    devices = [inputs_embeds.device] if inputs_embeds.device.type == "cuda" else []
    # Sampling is seeded inside a forked RNG: a training run's dropout and data order stay untouched.
    with torch.random.fork_rng(devices=devices, enabled=settings.do_sample):
        if settings.do_sample:
            torch.manual_seed(settings.seed)
        out = llm.model.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            eos_token_id=eos_ids,
            pad_token_id=tokenizer.pad_token_id,
            **settings.hf_kwargs(),
        )
    results = []
    for row in out.tolist():
        # generate() with inputs_embeds returns only the new tokens; cut at the first end-of-turn.
        stop = next((i for i, t in enumerate(row) if t in eos_ids), None)
        tokens = row if stop is None else row[:stop]
        finish = "stop" if stop is not None else "length"
        results.append(Generation(text=tokenizer.decode(tokens, skip_special_tokens=True).strip(), num_tokens=len(tokens), finish_reason=finish))
    return results


def generate_chat(llm: Any, conversations: list, settings: GenerationSettings, batch_size: int = 16) -> list[Generation]:
    """Text-only chat conversations (self-generation backends, judges) through :func:`generate_from_embeddings`.

    Each conversation is tokenized with the backbone's own chat template, left-padded with its
    batch and embedded from the frozen table, exactly as the LALM does for its text tokens.
    """
    from toolkit.models.chat import ChatFormatter

    formatter = ChatFormatter(tokenizer=llm.tokenizer, eos_token_id=llm.eos_token_ids[0])
    device = llm.lm_head.weight.device
    pad = llm.tokenizer.pad_token_id
    results: list[Generation] = []
    for start in range(0, len(conversations), batch_size):
        encoded = [formatter.encode(c).input_ids for c in conversations[start : start + batch_size]]
        width = max(len(e) for e in encoded)
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
        results += generate_from_embeddings(llm, llm.embed(ids), mask, settings)
    return results
