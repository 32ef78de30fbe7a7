"""The composite Large Audio Language Model: encoder -> adapter -> spliced into a frozen LLM.

Reads top to bottom:

1. ``LALM.from_config`` builds the parts in order, passing sizes along (encoder width and tap
   count to the adapter, LLM width to the adapter), after checking every config node at once.
2. ``encode_audio`` runs the frozen encoder and the adapter: audio vectors per clip.
3. ``assemble`` turns tokenized conversations plus audio vectors into left-padded
   ``inputs_embeds`` (placeholder positions overwritten by audio vectors), labels and masks.
4. ``forward`` computes the causal-LM loss on response + end-of-turn tokens only, running the LM
   head only where there is a target (the vocabulary projection is most of a small model's cost).
5. ``generate`` answers conversations: transcripts (given or Whisper), then the shared
   ``generate_from_embeddings``.
6. ``save_pretrained`` / ``from_pretrained``: trainable weights (safetensors) + resolved config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.config import check_arguments, load_config, raise_if_problems, save_resolved, to_container
from toolkit.models.adapters import ADAPTERS
from toolkit.models.adapters.base import RUNTIME_ARGUMENTS, adapter_runtime
from toolkit.models.audio_vectors import AudioVectorCount, encode_audio, encode_waveforms
from toolkit.models.chat import IGNORE_INDEX, ChatFormatter, TokenizedConversation, placeholder_token_id
from toolkit.models.encoders import ENCODERS
from toolkit.models.encoders.base import EncoderOutput
from toolkit.models.generation import Generation, GenerationSettings, generate_from_embeddings
from toolkit.models.llms import LLMS
from toolkit.models.transcribers import TRANSCRIBERS

ADAPTER_RUNTIME = RUNTIME_ARGUMENTS
COMPONENTS = ("encoder", "adapter", "llm", "transcriber")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"


def check_model_config(cfg: Mapping[str, Any]) -> list[str]:
    """Every problem of the model part of a config, without building anything."""
    cfg = to_container(cfg)
    problems = []
    for slot, registry, runtime in (("encoder", ENCODERS, frozenset()), ("adapter", ADAPTERS, ADAPTER_RUNTIME),
                                    ("llm", LLMS, frozenset()), ("transcriber", TRANSCRIBERS, frozenset())):
        if slot not in cfg:
            problems.append(f"{slot}: missing; add a '{slot}:' node (or a defaults entry '- {slot}: <option>')")
        else:
            problems += registry.check(cfg[slot], slot, runtime)
    problems += check_arguments(LALM, cfg.get("lalm") or {}, "lalm", frozenset(COMPONENTS))
    problems += check_arguments(GenerationSettings, cfg.get("generation") or {}, "generation")
    return problems


class LALM(nn.Module):
    """Encoder + adapter + LLM with transcript splicing (DeSTA2.5-Audio by default).

    Args (the ``lalm:`` YAML section; components are built from their own sections):
        audio_start, audio_end: plain-text tags around each audio's vectors and transcript.
        transcript_max_tokens: transcripts are cut to this many LLM tokens (100 as the reference).
        use_transcript: False leaves transcripts out (ablation).
        system_prompt: a system turn added to every conversation (null: none).
        placeholder_token: an existing token whose id fills audio positions before their
            embeddings are overwritten; null takes the tokenizer's pad token.
        max_seq_len: training sequences longer than this get their response cut (and flagged).
        lm_head_on_targets_only: compute vocabulary logits only at supervised positions.
    """

    def __init__(
        self,
        encoder: nn.Module,
        adapter: nn.Module,
        llm: nn.Module,
        transcriber: Any,
        audio_start: str = "<start_audio>",
        audio_end: str = "<end_audio>",
        transcript_max_tokens: int | None = 100,
        use_transcript: bool = True,
        system_prompt: str | None = None,
        placeholder_token: str | None = None,
        max_seq_len: int | None = 300,
        lm_head_on_targets_only: bool = True,
    ):
        super().__init__()
        self.encoder, self.adapter, self.llm = encoder, adapter, llm
        self.transcriber = transcriber
        self.max_seq_len = max_seq_len
        self.lm_head_on_targets_only = lm_head_on_targets_only
        self.config: dict[str, Any] = {}
        tokenizer = llm.tokenizer
        self.formatter = None
        self.placeholder_id = 0
        if tokenizer is not None:  # absent only in meta-device builds
            self.formatter = ChatFormatter(
                tokenizer=tokenizer, eos_token_id=llm.eos_token_ids[0], audio_start=audio_start, audio_end=audio_end,
                transcript_max_tokens=transcript_max_tokens, use_transcript=use_transcript, system_prompt=system_prompt,
            )
            self.placeholder_id = placeholder_token_id(tokenizer, placeholder_token)

    # 1. building ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "LALM":
        """Build every part from a config (``encoder``, ``adapter``, ``llm``, ``transcriber``, ``lalm``)."""
        cfg = to_container(cfg)
        raise_if_problems(check_model_config(cfg))
        encoder = ENCODERS.build(cfg["encoder"], "encoder")
        llm = LLMS.build(cfg["llm"], "llm")
        adapter = ADAPTERS.build(cfg["adapter"], "adapter", **adapter_runtime(cfg["adapter"], encoder, llm.hidden_size))
        transcriber = TRANSCRIBERS.build(cfg["transcriber"], "transcriber")
        model = cls(encoder=encoder, adapter=adapter, llm=llm, transcriber=transcriber, **(cfg.get("lalm") or {}))
        model.config = {k: cfg[k] for k in (*COMPONENTS, "lalm", "generation") if k in cfg}
        if cfg["adapter"].get("num_heads") is None and hasattr(adapter, "num_heads"):
            # Heads are invisible in weight shapes: write the resolved count, so a reload never rests on a default.
            model.config["adapter"] = {**cfg["adapter"], "num_heads": int(adapter.num_heads)}
        return model

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        """Total and trainable parameters per part (the Whisper decoder is never loaded)."""
        counts = {}
        for name in ("encoder", "adapter", "llm"):
            module = getattr(self, name)
            counts[name] = {"total": sum(p.numel() for p in module.parameters()),
                            "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad)}
        counts["all"] = {k: sum(c[k] for c in counts.values()) for k in ("total", "trainable")}
        return counts

    @property
    def device(self) -> torch.device:
        return next(self.adapter.parameters()).device

    def _apply(self, fn, recurse: bool = True):
        # ``to``/``cuda``/``cpu`` all end here. The transcriber is no nn.Module (it loads lazily), so
        # move it by hand: otherwise a config's ``transcriber.device: cuda`` breaks a CPU machine
        # after ``from_pretrained(device="cpu")``, and a GPU model would transcribe on the CPU.
        out = super()._apply(fn, recurse)
        if self.transcriber is not None and any(True for _ in self.adapter.parameters()):
            device = self.device
            if device.type != "meta":
                self.transcriber.to(device)
        return out

    # 2. audio -> vectors --------------------------------------------------------------------
    def num_audio_vectors(self, num_samples: int) -> int:
        """Audio vectors one clip of ``num_samples`` samples takes, as the encoder and adapter declare it."""
        return self.audio_vector_count()(num_samples)

    def audio_vector_count(self) -> AudioVectorCount:
        """:meth:`num_audio_vectors` as a picklable object for data loader workers (no weights inside)."""
        return AudioVectorCount(self.encoder, self.adapter)

    def encode_audio(
        self,
        features: dict[str, torch.Tensor] | None = None,
        encoder_output: EncoderOutput | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio vectors (A, N, H) and their counts (A,) for a flat batch of A audios.

        Pass either encoder inputs (``features`` from the encoder's feature extractor) or cached
        encoder states (``encoder_output``, from the feature cache).
        """
        return encode_audio(self.encoder, self.adapter, features, encoder_output)

    def encode_waveforms(self, waves: Sequence[np.ndarray], chunk_size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio vectors for raw clips, encoded in duration-sorted chunks (:func:`encode_waveforms`), padded."""
        vectors = encode_waveforms(self.encoder, self.adapter, waves, chunk_size)
        lengths = torch.tensor([v.shape[0] for v in vectors], device=self.device)
        padded = torch.zeros(len(vectors), int(lengths.max()), vectors[0].shape[-1], dtype=vectors[0].dtype, device=self.device)
        for i, v in enumerate(vectors):
            padded[i, : v.shape[0]] = v
        return padded, lengths

    # 3. splice -------------------------------------------------------------------------------
    def assemble(
        self,
        conversations: Sequence[TokenizedConversation],
        audio_embeds: torch.Tensor | None,
        audio_lengths: torch.Tensor | None,
        pack_length: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Left-padded ``inputs_embeds``, ``attention_mask``, ``position_ids`` and ``labels``.

        Audio ``k`` of the flat batch (conversation order) fills ``audio_lengths[k]`` placeholder
        positions at its slot; their embeddings are overwritten with its vectors.

        ``pack_length`` packs the rows into sequences of at most that many positions instead
        (right-padded, positions restarted per row, a block-diagonal causal ``attention_mask`` in
        the form the LLM's attention takes; see :mod:`toolkit.models.packing`).
        """
        lengths = [] if audio_lengths is None else [int(n) for n in audio_lengths.tolist()]
        n_slots = sum(len(conv.audio_slots) for conv in conversations)
        if n_slots != len(lengths):
            raise ValueError(f"{len(lengths)} audios encoded but the conversations have {n_slots} audio slots")
        rows_ids, rows_labels, rows_audio = [], [], []
        k = 0
        for conv in conversations:
            counts = lengths[k : k + len(conv.audio_slots)]
            ids, labels, offsets = conv.spliced(counts, self.placeholder_id)
            is_audio = [False] * len(ids)
            for offset, n in zip(offsets, counts):
                is_audio[offset : offset + n] = [True] * n
            k += len(counts)
            rows_ids.append(ids), rows_labels.append(labels), rows_audio.append(is_audio)
        if pack_length is not None:
            return self._assemble_packed(rows_ids, rows_labels, rows_audio, [len(c.audio_slots) for c in conversations],
                                         audio_embeds, lengths, pack_length)
        width = max(len(r) for r in rows_ids)
        pad = self.llm.tokenizer.pad_token_id if self.llm.tokenizer is not None else 0
        device = self.device

        def left_pad(rows, value):
            return torch.tensor([[value] * (width - len(r)) + r for r in rows], device=device)

        input_ids = left_pad(rows_ids, pad)
        attention_mask = left_pad([[1] * len(r) for r in rows_ids], 0)
        audio_mask = left_pad(rows_audio, False).bool()
        embeds = self.llm.embed(input_ids)
        if k:
            vectors = torch.cat([audio_embeds[i, : int(n)] for i, n in enumerate(lengths)])
            embeds = embeds.masked_scatter(audio_mask.unsqueeze(-1), vectors.to(embeds.dtype))
        # Positions count real tokens only, so left padding changes nothing for a sample.
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return {"inputs_embeds": embeds, "attention_mask": attention_mask, "position_ids": position_ids,
                "labels": left_pad(rows_labels, IGNORE_INDEX)}

    def _assemble_packed(self, rows_ids: list[list[int]], rows_labels: list[list[int]], rows_audio: list[list[bool]],
                         slots_per_row: list[int], audio_embeds: torch.Tensor | None, lengths: list[int],
                         pack_length: int) -> dict[str, torch.Tensor]:
        from toolkit.models.packing import block_causal_mask, pack_rows, packed_positions

        bins = pack_rows([len(r) for r in rows_ids], pack_length)
        width = max(sum(len(rows_ids[i]) for i in b) for b in bins)
        pad = self.llm.tokenizer.pad_token_id if self.llm.tokenizer is not None else 0
        ids, labels, is_audio = [], [], []
        for b in bins:
            row_ids = [t for i in b for t in rows_ids[i]]
            # A row's first label is never a target (the previous row's last position must not predict it).
            row_labels = [IGNORE_INDEX if j == 0 else t for i in b for j, t in enumerate(rows_labels[i])]
            row_audio = [t for i in b for t in rows_audio[i]]
            fill = width - len(row_ids)
            ids.append(row_ids + [pad] * fill)
            labels.append(row_labels + [IGNORE_INDEX] * fill)
            is_audio.append(row_audio + [False] * fill)
        device = self.device
        input_ids = torch.tensor(ids, device=device)
        audio_mask = torch.tensor(is_audio, device=device)
        embeds = self.llm.embed(input_ids)
        if lengths:
            # Audio vectors in packed order: audio k belongs to the conversation it was counted in.
            per_row, k = [], 0
            for n_slots in slots_per_row:
                per_row.append(list(range(k, k + n_slots)))
                k += n_slots
            order = [a for b in bins for i in b for a in per_row[i]]
            vectors = torch.cat([audio_embeds[a, : int(lengths[a])] for a in order])
            embeds = embeds.masked_scatter(audio_mask.unsqueeze(-1), vectors.to(embeds.dtype))
        positions, segments = packed_positions([[len(rows_ids[i]) for i in b] for b in bins], width)
        mask = block_causal_mask(segments.to(device), self.llm.attn_implementation, embeds.dtype)
        return {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": positions.to(device),
                "labels": torch.tensor(labels, device=device)}

    # 4. loss -------------------------------------------------------------------------------
    def forward(
        self,
        conversations: Sequence[TokenizedConversation],
        features: dict[str, torch.Tensor] | None = None,
        encoder_output: EncoderOutput | None = None,
        pack_length: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Token-mean cross-entropy over every supervised token of the batch (as HF computes it).

        ``pack_length`` packs the batch's rows into sequences of at most that many positions
        (same loss up to float rounding; less padding, fewer and larger matmuls).
        """
        has_audio = any(c.audio_slots for c in conversations)
        audio_embeds, audio_lengths = self.encode_audio(features, encoder_output) if has_audio else (None, None)
        batch = self.assemble(conversations, audio_embeds, audio_lengths, pack_length=pack_length)
        labels = batch.pop("labels")
        targets = labels[:, 1:]
        mask = targets != IGNORE_INDEX
        n_targets = mask.sum()
        if self.lm_head_on_targets_only:
            hidden = self.llm.decoder_hidden_states(**batch)[:, :-1]
            logits = self.llm.lm_head(hidden[mask]).float()
            loss = F.cross_entropy(logits, targets[mask], reduction="sum") / n_targets.clamp(min=1)
        else:  # the naive path: full-vocabulary logits at every position (kept for the benchmark)
            hidden = self.llm.decoder_hidden_states(**batch)
            logits = self.llm.lm_head(hidden).float()[:, :-1]
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                                   reduction="sum") / n_targets.clamp(min=1)
        return {"loss": loss, "n_targets": n_targets}

    # 5. generation -------------------------------------------------------------------------
    def transcribe(self, waveforms: Sequence[np.ndarray], given: Sequence[str | None]) -> list[str]:
        """Transcripts for the audios: a given text wins, else the configured transcriber."""
        return self.transcriber.transcribe(waveforms, given)

    @torch.no_grad()
    def generate(
        self,
        messages: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]],
        generation: GenerationSettings | Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> Any:
        """Answer one conversation or a batch of them.

        ``messages`` is a list of ``{"role", "content", "audios": [{"audio": path or array, "text": optional transcript}]}``
        (one conversation) or a list of such lists (a batch, run together with left padding).
        Returns the answer text(s); with ``return_details`` a dict per conversation with
        ``text``, ``transcripts``, ``finish_reason`` and ``num_tokens``.
        """
        from toolkit.audio import load_audio

        if not messages:
            return []
        single = isinstance(messages[0], Mapping)
        batch = [list(messages)] if single else [list(m) for m in messages]
        settings = self._settings(generation)
        was_training = self.training
        self.eval()
        try:
            waves, given, per_conv = [], [], []
            for conv in batch:
                n = self.formatter.count_audios(conv)
                per_conv.append(n)
                for m in conv:
                    for a in m.get("audios") or []:
                        audio = a["audio"]
                        waves.append(load_audio(audio) if isinstance(audio, (str, Path)) else np.asarray(audio, dtype=np.float32))
                        given.append(a.get("text"))
            transcripts = self.transcribe(waves, given) if waves else []
            tokenized, start = [], 0
            for conv, n in zip(batch, per_conv):
                tokenized.append(self.formatter.encode(conv, transcripts[start : start + n]))
                start += n
            audio_embeds, audio_lengths = self.encode_waveforms(waves) if waves else (None, None)
            inputs = self.assemble(tokenized, audio_embeds, audio_lengths)
            outs: list[Generation] = generate_from_embeddings(self.llm, inputs["inputs_embeds"], inputs["attention_mask"], settings)
        finally:
            self.train(was_training)
        if not return_details:
            texts = [o.text for o in outs]
            return texts[0] if single else texts
        details, start = [], 0
        for o, n in zip(outs, per_conv):
            details.append({"text": o.text, "transcripts": transcripts[start : start + n], "finish_reason": o.finish_reason, "num_tokens": o.num_tokens})
            start += n
        return details[0] if single else details

    def _settings(self, generation: GenerationSettings | Mapping[str, Any] | None) -> GenerationSettings:
        if isinstance(generation, GenerationSettings):
            return generation
        base = dict(self.config.get("generation") or {})
        base.update(generation or {})
        return GenerationSettings(**base)

    # 6. save / load --------------------------------------------------------------------------
    def trainable_state_names(self) -> set[str]:
        """The state a training run changes: weights that train (adapter, LoRA) and the adapter's saved buffers
        (the ``pooled`` adapter's normalisation statistics); the frozen encoder and LLM are referenced, not copied."""
        saved = set(self.adapter.state_dict())  # parameters and persistent buffers
        buffers = {f"adapter.{n}" for n, _ in self.adapter.named_buffers() if n in saved}
        return {n for n, p in self.named_parameters() if p.requires_grad} | buffers

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors named by :meth:`trainable_state_names`, detached on CPU."""
        names = self.trainable_state_names()
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if k in names}

    def load_trainable_state_dict(self, state: Mapping[str, torch.Tensor], strict: bool = True) -> None:
        expected = self.trainable_state_names()
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if strict and (missing or unexpected):
            raise KeyError(f"trainable weights do not match the model: missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                           f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}. Was the checkpoint made with another adapter/LoRA config?")
        own = self.state_dict()
        with torch.no_grad():
            for k, v in state.items():
                if k in own:
                    own[k].copy_(v.to(own[k].dtype))

    def save_pretrained(self, out_dir: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` (trainable weights) and ``config.yaml`` (how to rebuild the rest)."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state_dict(), str(out / WEIGHTS_FILE), metadata={"format": "pt", "toolkit": "desta-toolkit"})
        save_resolved(self.config, out, CONFIG_FILE)
        counts = self.parameter_counts()
        (out / "model_info.json").write_text(json.dumps({"parameters": counts, **(extra or {})}, indent=2))
        return out

    @classmethod
    def from_pretrained(cls, export_dir: str | Path, overrides: Sequence[str] = (), device: str | torch.device = "cpu") -> "LALM":
        """Rebuild a model written by ``save_pretrained`` (the export stage): config + trainable weights."""
        from safetensors.torch import load_file

        root = Path(export_dir)
        if not (root / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{root} is not an exported model (no {CONFIG_FILE}); run the export stage "
                                    "(./run.sh --stage 8) or pass the right directory")
        weights = root / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} is missing: the training or export stage did not finish; rerun it "
                                    f"(./run.sh --stage 5 or --stage 8) rather than using an untrained adapter")
        model = cls.from_config(load_config(root / CONFIG_FILE, overrides))
        model.load_trainable_state_dict(load_file(str(weights)))
        return model.to(device).eval()
