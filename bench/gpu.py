"""GPU throughput at the paper's shapes with random weights: adapter-training samples/s and MFU, memory, decoding.

    bash bench/gpu.sh                      # one GPU, < 8 min, no downloads
    bash bench/gpu.sh --demo               # the demo config's shapes: fixed batches vs token budget + packing
    python bench/gpu.py --tiny --steps 1   # the tiny shapes on CPU: the CI smoke run

Shapes (``toolkit/presets``; built on the meta device, then materialised on the device and filled
with random values, so nothing is downloaded): the Whisper-large-v3 encoder (frozen, bf16), the
6-layer DeSTA2.5 Q-Former (fp32 weights under bf16 autocast, trained), a Llama-3.1-8B-shaped LLM
(frozen, bf16).  ``--tiny``: the tiny Whisper / Llama of the asset cache and a 1-layer Q-Former.

Prints, as one JSON object (``--json`` writes it too):

- ``train_batch{N}`` for each ``--batch``: adapter-training steps (encoder forward, Q-Former
  forward + backward, LLM forward + backward to the audio vectors, AdamW) on synthetic
  conversations whose lengths spread over 0.5x-1.5x the means, padded to the longest row and
  packed (``--pack-length``, by default the length that pads least; flash-attn's varlen kernel
  where installed, else flex attention), interleaved by ``bench/harness.py``: samples/s, step s
  (median, min-max over ``--steps``), padding share, model FLOPs per step on real positions, MFU
  against ``--peak-tflops`` (default: the card's dense bf16 peak where known), peak memory, and
  the loss of each: packed must equal padded within ``--loss-atol``, and a leak control (the
  packed step with its row boundaries erased) shows how far a leak would move it;
- ``generate``: greedy decoding of ``--gen-n`` prompts, ``--gen-tokens`` new tokens each, batched
  and one by one (tokens/s, ratio); end of sequence is ignored so every run makes the same number
  of tokens;
- ``demo_epoch`` (``--demo``, in place of the above): the embedded default's shapes (Whisper
  tiny.en, the small Q-Former, SmolLM2-135M in bf16) over one epoch of ``--clips`` clips of 1-6 s,
  in ``BucketBatchSampler``'s batches: ``--demo-batch`` rows padded (the unpacked default), a
  token budget padded, and the token budget packed: samples/s, padding share, the epoch's
  token-mean loss of each (equal within ``--loss-atol``), and the same leak control;
- ``vllm``: vLLM's offline engine on the same LLM shape (``load_format=dummy``: random weights,
  no files) where vLLM is installed and a GPU is present, after the model has been freed.

Each part runs on its own: one that fails is recorded as ``{"error": ...}`` and the others still
run; the JSON is rewritten after each part, so a run stopped by its time limit keeps what it
measured.

FLOPs are counted from the shapes (matmuls as 2 x multiply-adds; backward = 2 x forward for the
trained adapter, 1 x forward for the frozen LLM, which only passes gradients back to its inputs;
attention score and value products included; the frozen encoder runs forward only).
"""

from __future__ import annotations

import toolkit  # noqa: F401  (first: passive OpenMP waiting, set before torch loads)

import argparse
import contextlib
import functools
import gc
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from harness import write_json

# Dense bf16 peak TFLOP/s of cards by name fragment (vendor data sheets, no sparsity).
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 125.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
}


SHAPES = {
    "tiny": "tiny",
    "paper": "whisper-large-v3 + qformer-6 + llama-3.1-8b",
    "demo": "whisper-tiny.en + qformer-small + smollm2-135m",
}


def build(shapes: str, device: torch.device) -> Any:
    """The model at ``shapes`` (a key of ``SHAPES``) on ``device``, with random weights."""
    from toolkit.assets import asset_dir
    from toolkit.models.lalm import LALM
    from toolkit.models.loading import skip_weights

    if shapes == "demo":
        # The embedded default's components (toolkit/conf: whisper_tiny_en, qformer_small,
        # smollm2_135m_instruct), from their presets; sdpa, the GPU's attention for padded rows.
        parts = {
            "encoder": {"name": "whisper", "model_path": "openai/whisper-tiny.en", "preset": "whisper-tiny.en",
                        "tapped_layers": [0, 1, 2, 3]},
            "adapter": {"name": "qformer", "num_layers": 2, "num_queries": 64, "hidden_size": 384, "num_heads": 6,
                        "intermediate_size": 1536},
            "llm": {"name": "hf_causal_lm", "model_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
                    "preset": "smollm2-135m-instruct", "dtype": "bfloat16", "attn_implementation": "sdpa"},
        }
    elif shapes == "tiny":
        parts = {
            "encoder": {"name": "whisper", "model_path": str(asset_dir("tiny-whisper")), "tapped_layers": [0, 1, 2, 3]},
            "adapter": {"name": "qformer", "num_layers": 1, "num_queries": 8, "num_heads": 4, "intermediate_size": 128},
            "llm": {
                "name": "hf_causal_lm",
                "model_path": str(asset_dir("tiny-llama")),
                "dtype": "float32",
                "attn_implementation": "sdpa",
            },
        }
    else:
        parts = {
            "encoder": {
                "name": "whisper",
                "model_path": "openai/whisper-large-v3",
                "preset": "whisper-large-v3",
                "tapped_layers": [7, 15, 23, 31],
            },
            "adapter": {"name": "qformer", "num_layers": 6, "num_queries": 64, "intermediate_size": 3072},
            "llm": {
                "name": "hf_causal_lm",
                "model_path": "meta-llama/Llama-3.1-8B-Instruct",
                "preset": "llama-3.1-8b-instruct",
                "dtype": "bfloat16",
                "attn_implementation": "sdpa",
            },
        }
    with skip_weights():
        model = LALM.from_config({**parts, "transcriber": {"name": "none"}})
    model = model.to_empty(device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
            else:
                p.zero_()
        # Norm scales to 1, found by class: a name test missed the Q-Former's BERT-style "LayerNorm"
        # and its output projection's norm, which left every audio vector exactly 0.
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm) or type(m).__name__.endswith("RMSNorm"):
                if getattr(m, "weight", None) is not None:
                    m.weight.fill_(1.0)
        # Buffers computed at construction (rotary frequencies) were left on meta: rebuild those modules' buffers.
        for m in model.modules():
            if hasattr(m, "inv_freq") and hasattr(m, "config"):
                fresh = type(m)(m.config)
                for name, b in fresh.named_buffers(recurse=False):
                    getattr(m, name).copy_(b)
    if shapes != "tiny":
        model.encoder.to(torch.bfloat16)
    return model


def row_lengths(n: int, mean: int, seed: int) -> list[int]:
    """``n`` lengths spread evenly over 0.5x-1.5x ``mean`` (so batches pad, as real ones do)."""
    g = torch.Generator().manual_seed(seed)
    return [max(1, round(mean * (0.5 + float(u)))) for u in torch.rand(n, generator=g)]


def conversations(n: int, text_tokens: int, response_tokens: int, vocab: int, seed: int) -> list[Any]:
    """Synthetic tokenized conversations: prompt, one audio slot, transcript-like text, a supervised response."""
    from toolkit.models.chat import IGNORE_INDEX, TokenizedConversation

    g = torch.Generator().manual_seed(seed)
    convs = []
    for text, response in zip(row_lengths(n, text_tokens, seed), row_lengths(n, response_tokens, seed + 3)):
        ids = torch.randint(10, vocab - 10, (text + response,), generator=g).tolist()
        labels = [IGNORE_INDEX] * text + ids[text:]
        convs.append(TokenizedConversation(input_ids=ids, labels=labels, audio_slots=[min(8, text)]))
    return convs


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def step_flops(model: Any, frames: int, rows: list[int], targets: int) -> float:
    """Model FLOPs of one adapter-training step on real positions only (see the module docstring).

    ``rows``: each row's LLM positions (pads excluded, so padded and packed steps count the same
    work); ``targets``: supervised positions, the only ones the LM head runs on.
    """
    base = model.llm._base()
    layers, width = int(base.config.num_hidden_layers), int(base.config.hidden_size)
    embed = parameter_count(base.get_input_embeddings())
    head = parameter_count(base.get_output_embeddings())
    if base.get_output_embeddings().weight is base.get_input_embeddings().weight:
        head = embed  # tied: counted once in the parameters, run once as the head
    body = parameter_count(model.llm) - embed - (0 if head == embed and embed else head)
    # weights + causal QK^T and AV (counted as the full square, as the usual MFU formulas do)
    llm_fwd = 2 * body * sum(rows) + 2 * head * targets + sum(2 * 2 * layers * n * n * width for n in rows)
    batch = len(rows)
    enc_fwd = 2 * parameter_count(model.encoder) * frames
    enc_cfg = model.encoder.encoder.config if hasattr(model.encoder, "encoder") else None
    if enc_cfg is not None:
        enc_fwd += 2 * 2 * int(enc_cfg.encoder_layers) * frames * frames * int(enc_cfg.d_model)
    adapter_fwd = 2 * parameter_count(model.adapter) * frames  # cross-attention reads every frame of every tap
    return float(batch * (enc_fwd + 3 * adapter_fwd) + 2 * llm_fwd)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def packed_attention(device: torch.device) -> str:
    """The attention a packed step uses: varlen flash-attn if installed, flex attention on other GPUs, masks on CPU."""
    import importlib.util

    if device.type != "cuda":
        return "sdpa"  # a block-diagonal mask (PyTorch runs flex attention's backward on GPUs only)
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") else "flex_attention"


def padding_share(rows: list[int], pack_length: int | None) -> float:
    """The share of the LLM's positions that are padding, padded to the longest row or packed."""
    from toolkit.models.packing import pack_rows

    if pack_length is None:
        return 1.0 - sum(rows) / (len(rows) * max(rows))
    bins = pack_rows(rows, pack_length)
    width = max(sum(rows[i] for i in b) for b in bins)
    return 1.0 - sum(rows) / (len(bins) * width)


def best_pack_length(rows: list[int], limit: int) -> int:
    """The pack length up to ``limit`` (at least the longest row) that leaves the least padding.

    A fixed length can waste more than padding does (16 rows of ~270 positions at 4096: one full
    sequence and one nearly empty, 48 % padding), so the bench packs as a tuned run would.
    """
    candidates = range(max(rows), max(limit, max(rows)) + 1, 8)
    return min(candidates, key=lambda n: (round(padding_share(rows, n), 4), -n))


def default_loss_atol(model: Any) -> float:
    """How far a packed or re-batched loss may move: bf16 rounds differently for other shapes, fp32 barely."""
    return 5e-3 if model.llm.dtype == torch.bfloat16 else 1e-5


def train(model: Any, device: torch.device, args: argparse.Namespace, batch: int) -> dict[str, Any]:
    """Padded and packed adapter-training steps at one batch size, interleaved by the harness.

    The optimizer runs at learning rate 0: each step does AdamW's full work but leaves the
    weights as they were, so every call computes the same loss and the variants' losses can be
    compared (packing must not change it beyond bf16 rounding).
    """
    from harness import Variant, compare

    fx_frames = int(args.seconds * 100)  # log-mel frames at 100/s; the encoder halves them
    n_mels = int(model.encoder.encoder.config.num_mel_bins) if hasattr(model.encoder, "encoder") else 80
    features = {
        "features": torch.randn(batch, n_mels, fx_frames, device=device),
        "feature_lengths": torch.full((batch,), fx_frames, dtype=torch.long, device=device),
    }
    base = model.llm._base()
    vocab = int(base.config.vocab_size)
    convs = conversations(batch, args.text_tokens, args.response_tokens, vocab, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.0, fused=device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    # Dropout off (eval mode; autograd still runs): with the Q-Former's dropout on, every call draws
    # new masks and the padded and packed losses would differ by that noise as well as by rounding.
    model.eval()
    n_audio = int(getattr(model.adapter, "num_queries", 0))
    rows = [len(c.input_ids) + n_audio * len(c.audio_slots) for c in convs]
    targets = sum(sum(1 for t in c.labels[1:] if t >= 0) for c in convs)
    pack_length = args.pack_length or (sum(rows) if args.tiny else best_pack_length(rows, 4096))
    padded_attention = model.llm.attn_implementation
    pack_attention = args.pack_attention or packed_attention(device)

    def step(attention: str, pack: int | None) -> float:
        base.set_attn_implementation(attention)
        with autocast:
            out = model(conversations=convs, features=features, pack_length=pack)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(out["loss"].detach())

    # bf16 matmuls of other shapes round differently; a tolerance tighter than the leak control's
    # difference below (measured every run) is what makes "equal" mean "rows stayed apart".
    atol = args.loss_atol if args.loss_atol is not None else default_loss_atol(model)
    variants = [
        Variant("padded", lambda: step(padded_attention, None), units=batch),
        Variant(f"packed ({pack_attention}, {pack_length})", lambda: step(pack_attention, pack_length),
                units=batch, atol=atol),
    ]
    try:
        # A mismatch is reported beside its timings (and fails the run at the end) instead of losing them.
        result = compare(f"adapter training, batch {batch}", variants, baseline="padded", repeats=args.steps,
                         warmup=args.warmup, unit="samples", raise_on_mismatch=False)
        leak = leak_control(model, convs, features, autocast, padded_attention, pack_attention, pack_length)
    finally:
        base.set_attn_implementation(padded_attention)
    flops = step_flops(model, fx_frames // 2, rows, targets)
    out = {
        "batch": batch,
        "seconds_per_clip": args.seconds,
        "llm_positions_per_sample_mean": sum(rows) / batch,
        "tflops_per_step": flops / 1e12,
        "loss": [float(v.output) for v in variants],
        "loss_finite": all(_finite(float(v.output)) for v in variants),
        "loss_atol": atol,
        "packed_loss_equal": result.rows[1]["within_atol"],
        # What the packed loss would differ by if rows saw each other: it must exceed the tolerance.
        "leak_control_loss_diff": leak,
        "leak_control_separated": leak > atol,
        "variants": [],
    }
    for v, r, pack in zip(variants, result.rows, (None, pack_length)):
        achieved = flops / r["median_s"] / 1e12
        out["variants"].append({
            "variant": v.name,
            "samples_per_s": batch / r["median_s"],
            "step_s_median": r["median_s"],
            "step_s_min": r["min_s"],
            "step_s_max": r["max_s"],
            "ratio_vs_padded": r["ratio"],
            "loss_diff_vs_padded": r["output_diff"],
            "padding_share": padding_share(rows, pack),
            "achieved_tflops": achieved,
            "mfu": achieved / args.peak_tflops if args.peak_tflops else None,
            "peak_memory_gib": r["peak_mib"] / 1024 if r["peak_mib"] is not None else None,
        })
    return out


@contextlib.contextmanager
def rows_not_isolated() -> Any:
    """Packing with the row boundaries erased (positions run on, one segment): the control that leaks."""
    from toolkit.models import packing

    real = packing.packed_positions

    def one_row(segment_lengths: Any, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions, segments = real(segment_lengths, width)
        return torch.arange(width).expand_as(positions).clone(), torch.zeros_like(segments)

    packing.packed_positions = one_row
    try:
        yield
    finally:
        packing.packed_positions = real


@torch.no_grad()
def leak_control(model: Any, convs: list[Any], features: dict[str, torch.Tensor], autocast: Any,
                 padded_attention: str, pack_attention: str, pack_length: int) -> float:
    """|loss(padded) - loss(packed with rows that see each other)|: how big a real leak would look.

    Random weights make the loss nearly log(vocab) whatever the input, so a loss match alone
    could hide rows attending across their boundaries; this puts a number on the difference a leak
    makes at these shapes, next to the tolerance the packed loss is held to.
    """
    base = model.llm._base()
    with autocast:
        base.set_attn_implementation(padded_attention)
        padded = float(model(conversations=convs, features=features)["loss"])
        base.set_attn_implementation(pack_attention)
        with rows_not_isolated():
            leaked = float(model(conversations=convs, features=features, pack_length=pack_length)["loss"])
    return abs(leaked - padded)


def demo_clips(n: int, vocab: int, seed: int = 0) -> tuple[list[float], list[Any]]:
    """``n`` clips of 1-6 s with conversations as the demo's rows are (3-30 word transcripts, 20-60 word answers)."""
    from toolkit.models.chat import IGNORE_INDEX, TokenizedConversation

    g = torch.Generator().manual_seed(seed)
    durations = [1.0 + 5.0 * float(u) for u in torch.rand(n, generator=g)]
    convs = []
    for _ in range(n):
        text = 20 + int(torch.randint(4, 40, (1,), generator=g))  # template + prompt + transcript
        response = int(torch.randint(26, 80, (1,), generator=g))
        ids = torch.randint(10, vocab - 10, (text + response,), generator=g).tolist()
        convs.append(TokenizedConversation(input_ids=ids, labels=[IGNORE_INDEX] * text + ids[text:],
                                           audio_slots=[8]))
    return durations, convs


def first_nonfinite(model: Any, plan: list[Any], autocast: Any, attention: str, packed: bool) -> dict[str, Any]:
    """Where the first non-finite value of an epoch appears: encoder (valid frames), adapter, loss or gradients.

    A forward and backward per batch, stage by stage, with no optimizer step (a NaN gradient
    would otherwise stay in the weights even at learning rate 0). Non-finite values that stay in
    padded rows are counted, not fatal: inside the encoder (each layer's output, seen by a hook
    before the encoder zeroes those rows) and in its output states past a clip's length.
    """
    from toolkit.models.encoders.base import EncoderOutput

    base = model.llm._base()
    previous = model.llm.attn_implementation
    base.set_attn_implementation(attention)
    padded_frames_nonfinite = layer_nonfinite = 0
    seen = {"layer": False}

    def watch(_module: Any, _args: Any, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        seen["layer"] = seen["layer"] or not bool(torch.isfinite(hidden).all())

    layers = getattr(getattr(model.encoder, "encoder", None), "layers", [])
    hooks = [layer.register_forward_hook(watch) for layer in layers]
    found: dict[str, Any] | None = None
    try:
        for k, (conversations_, features, lengths) in enumerate(plan):
            where = None
            seen["layer"] = False
            with autocast:
                enc = model.encoder(**features)
                layer_nonfinite += int(seen["layer"])
                steps = enc.hidden_states[0].shape[1]
                valid = torch.arange(steps, device=enc.lengths.device)[None, :] < enc.lengths[:, None]
                padded_ok = True
                for tap, states in enumerate(enc.hidden_states):
                    finite = torch.isfinite(states).all(-1)
                    if not bool(finite[valid].all()):
                        where = f"encoder tap {tap}, valid frames"
                        break
                    padded_ok = padded_ok and bool(finite[~valid].all())
                padded_frames_nonfinite += int(not padded_ok)
                if where is None:
                    vectors, _ = model.encode_audio(encoder_output=enc)
                    if not bool(torch.isfinite(vectors).all()):
                        where = "adapter output"
                if where is None:
                    out = model(conversations=conversations_, encoder_output=EncoderOutput(enc.hidden_states, enc.lengths),
                                pack_length=sum(lengths) if packed else None)
                    if not _finite(float(out["loss"].detach())):
                        where = "LLM loss"
            if where is None:
                out["loss"].backward()
                bad = [n for n, p in model.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
                model.zero_grad(set_to_none=True)
                if bad:
                    where = f"gradients of {len(bad)} tensors, first {bad[0]}"
            if where is not None:
                found = {"batch": k, "rows": len(lengths), "feature_frames": features["feature_lengths"].tolist(),
                         "where": where}
                break
    finally:
        for hook in hooks:
            hook.remove()
        base.set_attn_implementation(previous)
        model.zero_grad(set_to_none=True)
    return {"first": found, "batches_with_nonfinite_encoder_layer_output": layer_nonfinite,
            "batches_with_nonfinite_padded_encoder_frames": padded_frames_nonfinite}


def demo_epoch(model: Any, device: torch.device, args: argparse.Namespace, pack_attention: str) -> dict[str, Any]:
    """One training epoch of the demo's shapes on 1-6 s clips: fixed batches of 4 against a token budget, packed.

    Issue 18's ">= 1.5x over the unpacked default" on the demo config, on a GPU: the same clips in
    ``BucketBatchSampler``'s batches (the training data module's), padded at ``--demo-batch``
    rows, padded at the token budget, and packed (one sequence per budget batch) with
    ``pack_attention``. Every variant runs at learning rate 0 with dropout off, so each
    returns the token-mean loss of the epoch at the same weights, which must match the baseline's.
    """
    from harness import Variant, compare
    from toolkit.train.data import BucketBatchSampler

    base = model.llm._base()
    durations, convs = demo_clips(args.clips, int(base.config.vocab_size))
    n_audio = int(getattr(model.adapter, "num_queries", 0))
    rows = [len(c.input_ids) + n_audio * len(c.audio_slots) for c in convs]
    mean_row = sum(rows) / len(rows)
    budget = args.batch_tokens or int(16 * mean_row)  # bench/train_step.py's default budget
    n_mels = int(model.encoder.encoder.config.num_mel_bins)

    # One log-mel matrix per clip (frames at 100/s), whatever batch it lands in: every layout sees the same input.
    g = torch.Generator().manual_seed(1)
    clip_frames = [2 * round(d * 50) for d in durations]
    mels = [torch.randn(n_mels, n, generator=g) for n in clip_frames]

    def batches(batch_size: int, batch_tokens: int | None) -> list[tuple[list[Any], dict[str, torch.Tensor], list[int]]]:
        sampler = BucketBatchSampler(durations, rows, batch_size, seed=0, bucket_multiplier=100,
                                     batch_tokens=batch_tokens)
        out = []
        for idx in sampler:  # collated beforehand, as data-loader workers would hand them over
            frames = [clip_frames[i] for i in idx]
            padded = torch.zeros(len(idx), n_mels, max(frames))
            for j, i in enumerate(idx):
                padded[j, :, : frames[j]] = mels[i]
            features = {"features": padded.to(device), "feature_lengths": torch.tensor(frames, device=device)}
            out.append(([convs[i] for i in idx], features, [rows[i] for i in idx]))
        return out

    fixed, budgeted = batches(args.demo_batch, None), batches(10_000, budget)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.0, fused=device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    model.eval()  # dropout off: its masks depend on the batch layout (autograd still runs)
    padded_attention = model.llm.attn_implementation

    start = [p.detach().clone() for p in params]

    def run(plan: list[Any], attention: str, packed: bool) -> float:
        base.set_attn_implementation(attention)
        total = count = 0
        for conversations_, features, lengths in plan:
            with autocast:
                out = model(conversations=conversations_, features=features,
                            pack_length=sum(lengths) if packed else None)
            out["loss"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            total = total + out["loss"].detach() * out["n_targets"]  # tensors: no host sync per step
            count = count + out["n_targets"]
        loss = float(total) / int(count)
        if not _finite(loss):
            # A non-finite gradient stays in the weights even at lr 0 (0 x NaN): put them back, so one
            # variant's NaN cannot become every later variant's.
            with torch.no_grad():
                for p, p0 in zip(params, start):
                    p.copy_(p0)
            opt.state.clear()
        return loss

    atol = args.loss_atol if args.loss_atol is not None else default_loss_atol(model)
    variants = [
        Variant(f"batch {args.demo_batch}, padded", functools.partial(run, fixed, padded_attention, False),
                units=len(convs)),
        Variant("token budget, padded", functools.partial(run, budgeted, padded_attention, False),
                units=len(convs), atol=atol),
        Variant(f"token budget + packing ({pack_attention})", functools.partial(run, budgeted, pack_attention, True),
                units=len(convs), atol=atol),
    ]
    # Before timing: a NaN would otherwise surface only as a NaN epoch loss, with no stage named.
    nonfinite = {"padded": first_nonfinite(model, fixed, autocast, padded_attention, False),
                 "packed": first_nonfinite(model, budgeted, autocast, pack_attention, True)}
    try:
        result = compare(f"demo shapes, one epoch of {len(convs)} clips of 1-6 s", variants,
                         baseline=variants[0].name, repeats=args.repeats, warmup=args.warmup, unit="samples",
                         raise_on_mismatch=False)
        with rows_not_isolated():  # the packed epoch with the row boundaries erased: what a leak would change
            leak = abs(run(budgeted, pack_attention, True) - float(variants[0].output))
    finally:
        base.set_attn_implementation(padded_attention)

    def padding(plan: list[Any], packed: bool) -> float:
        real = sum(sum(lengths) for _, _, lengths in plan)
        width = sum(sum(lengths) if packed else len(lengths) * max(lengths) for _, _, lengths in plan)
        return 1.0 - real / width

    layouts = ((fixed, False), (budgeted, False), (budgeted, True))
    return {
        "clips": len(convs),
        "llm_positions_per_sample_mean": mean_row,
        "batch_tokens": budget,
        "steps": {"fixed": len(fixed), "budget": len(budgeted)},
        "loss_atol": atol,
        "loss_finite": all(_finite(float(v.output)) for v in variants),
        "losses_equal": all(r["within_atol"] for r in result.rows[1:]),
        "leak_control_loss_diff": leak,
        "leak_control_separated": leak > atol,
        "nonfinite": nonfinite,
        "variants": [
            {"variant": v.name, "samples_per_s": len(convs) / r["median_s"], "epoch_s_median": r["median_s"],
             "epoch_s_min": r["min_s"], "epoch_s_max": r["max_s"], "ratio": r["ratio"], "loss": float(v.output),
             "loss_diff": r["output_diff"], "padding_share": padding(plan, packed),
             "peak_memory_gib": r["peak_mib"] / 1024 if r["peak_mib"] is not None else None}
            for v, r, (plan, packed) in zip(variants, result.rows, layouts)
        ],
    }


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


@torch.no_grad()
def generate(model: Any, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    model.eval()
    llm = model.llm._base()
    vocab = int(llm.config.vocab_size)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(10, vocab - 10, (args.text_tokens,), generator=g) for _ in range(args.gen_n)]

    def run(batch: int) -> float:
        tokens = 0
        sync(device)
        start = time.perf_counter()
        for i in range(0, len(prompts), batch):
            ids = torch.stack(prompts[i : i + batch]).to(device)
            out = llm.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=args.gen_tokens,
                min_new_tokens=args.gen_tokens,
                do_sample=False,
                pad_token_id=0,
                eos_token_id=None,
            )
            tokens += (out.shape[1] - ids.shape[1]) * ids.shape[0]
        sync(device)
        return tokens / (time.perf_counter() - start)

    run(min(2, args.gen_n))  # warm-up
    one = run(1)
    batched = run(args.gen_n)
    return {
        "prompts": args.gen_n,
        "new_tokens": args.gen_tokens,
        "one_by_one_tokens_per_s": one,
        "batched_tokens_per_s": batched,
        "batched_over_one_by_one": batched / one,
    }


def vllm_decode(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    """vLLM on the LLM shape ``config`` with dummy weights; skipped (with the reason) without vLLM or a GPU."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return {"skipped": "vLLM is not installed (bash tools/install.sh --vllm)"}
    if not torch.cuda.is_available():
        return {"skipped": "no GPU: vLLM's CPU engine is timed by bench/selfgen.py --vllm instead"}
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        engine = LLM(
            model=tmp,
            load_format="dummy",
            skip_tokenizer_init=True,
            dtype="bfloat16",
            gpu_memory_utilization=0.5,
            max_model_len=2048,
            enforce_eager=False,
        )
        vocab = int(config["vocab_size"])
        g = torch.Generator().manual_seed(1)
        prompts = [
            TokensPrompt(prompt_token_ids=torch.randint(10, vocab - 10, (args.text_tokens,), generator=g).tolist())
            for _ in range(args.vllm_n)
        ]
        params = SamplingParams(max_tokens=args.gen_tokens, ignore_eos=True, temperature=0.0, detokenize=False)
        engine.generate(prompts[:2], params, use_tqdm=False)  # warm-up
        start = time.perf_counter()
        outs = engine.generate(prompts, params, use_tqdm=False)
        secs = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"prompts": args.vllm_n, "new_tokens": args.gen_tokens, "tokens_per_s": tokens / secs}


def run_section(report: dict[str, Any], name: str, work: Any, json_path: str | None) -> Any:
    """Run one part of the report; a failure is recorded (and printed) instead of losing the parts before it.

    The JSON is rewritten after every part, so a run cut short by its time limit keeps what it measured.
    """
    start = time.perf_counter()
    try:
        report[name] = work()
    except Exception as exc:  # noqa: BLE001  (any failure of one part must not cost the others)
        traceback.print_exc()
        report[name] = {"error": f"{type(exc).__name__}: {exc}"}
    report.setdefault("section_s", {})[name] = round(time.perf_counter() - start, 1)
    gc.collect()  # a part that failed (out of memory, say) must not keep its tensors from the next one
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    print(f"[gpu.py] {name}: {json.dumps(report[name], default=str)}", flush=True)
    write_json(json_path, report)
    return report[name]


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got '{text}'")
    return values


def demo_main(model: Any, device: torch.device, args: argparse.Namespace, report: dict[str, Any],
              start: float) -> int:
    """``--demo``: the epoch comparison, packed with the GPU's block-sparse attention (dense masks as a fallback)."""
    attention = args.pack_attention or packed_attention(device)
    sections = ["demo_epoch"]
    result = run_section(report, "demo_epoch", functools.partial(demo_epoch, model, device, args, attention),
                         args.json)
    if "error" in result and attention != "sdpa":
        sections.append("demo_epoch_sdpa")  # the same epochs, packed rows kept apart by a block-diagonal mask
        run_section(report, "demo_epoch_sdpa", functools.partial(demo_epoch, model, device, args, "sdpa"), args.json)
    return finish(report, sections, start, args.json)


def finish(report: dict[str, Any], sections: list[str], start: float, json_path: str | None) -> int:
    """Print and write the report; exit 1 naming every section that failed or whose loss checks did not hold."""
    report["total_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2, default=str))
    write_json(json_path, report)
    checks = (
        ("loss_finite", "a loss was not finite"),
        ("packed_loss_equal", "the packed loss differs from the padded one by more than loss_atol"),
        ("losses_equal", "a loss differs from the baseline's by more than loss_atol"),
        ("leak_control_separated", "a leak between packed rows would not exceed loss_atol (the check cannot tell)"),
    )
    failed = [name for name in sections if "error" in report[name]]
    failed += [f"{name}: {why}" for key, why in checks for name in sections if report[name].get(key) is False]
    if failed:
        print(f"bench/gpu.py: failed: {'; '.join(failed)} (the report keeps everything else)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke run)")
    parser.add_argument("--demo", action="store_true",
                        help="instead: the demo config's shapes (Whisper tiny.en, small Q-Former, SmolLM2-135M), one "
                             "epoch of 1-6 s clips in fixed batches against a token budget, padded and packed")
    parser.add_argument("--clips", type=int, default=None, help="--demo: clips per epoch (default 256; --tiny 8)")
    parser.add_argument("--demo-batch", type=int, default=4, help="--demo: rows per fixed batch (the baseline)")
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help="--demo: token budget, rows x longest row (default 16 x the mean row)")
    parser.add_argument("--repeats", type=int, default=None, help="--demo: timed epochs per variant (default 5; --tiny 1)")
    parser.add_argument("--batch", type=int_list, default=None,
                        help="clips per training step, comma-separated for a sweep (default 16,32; --tiny 2)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per clip (default 10; --tiny 1)")
    parser.add_argument("--text-tokens", type=int, default=None,
                        help="mean prompt + transcript tokens; rows spread over 0.5x-1.5x (default 160; --tiny 16)")
    parser.add_argument("--response-tokens", type=int, default=None,
                        help="mean supervised tokens, spread likewise (default 64; --tiny 8)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pack-length", type=int, default=None,
                        help="positions per packed sequence (default: the length up to 4096 that pads least; "
                             "--tiny all rows in one)")
    parser.add_argument("--pack-attention", default=None,
                        help="attention of the packed variant (default: flash_attention_2 where flash-attn is "
                             "installed, else flex_attention on a GPU, sdpa masks on a CPU)")
    parser.add_argument("--loss-atol", type=float, default=None,
                        help="how far the packed loss may be from the padded one (default 5e-3 for a bf16 LLM, 1e-5 for fp32)")
    parser.add_argument("--gen-n", type=int, default=None, help="prompts decoded (default 16; --tiny 2)")
    parser.add_argument("--gen-tokens", type=int, default=None, help="new tokens per prompt (default 64; --tiny 4)")
    parser.add_argument("--vllm-n", type=int, default=64, help="prompts for vLLM")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="the device's dense bf16 peak (default: known cards)"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    tiny = args.tiny
    for key, full, small in (
        ("batch", [16, 32], [2]),
        ("seconds", 10.0, 1.0),
        ("text_tokens", 160, 16),
        ("response_tokens", 64, 8),
        ("gen_n", 16, 2),
        ("gen_tokens", 64, 4),
        ("clips", 256, 8),
        ("repeats", 5, 1),
    ):
        if getattr(args, key) is None:
            setattr(args, key, small if tiny else full)
    shapes = "tiny" if tiny else ("demo" if args.demo else "paper")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    if args.peak_tflops is None and device.type == "cuda":
        args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in card), None)
    if device.type == "cpu":
        torch.set_num_threads(1)
    start = time.perf_counter()
    report: dict[str, Any] = {
        "device": card,
        "shapes": SHAPES[shapes],
        "torch": torch.__version__,
        "peak_tflops": args.peak_tflops,
    }
    built: dict[str, Any] = {}

    def build_model() -> dict[str, Any]:
        built["model"] = model = build(shapes, device)
        counts = model.parameter_counts()
        return {"params": {k: v["total"] for k, v in counts.items()}, "trainable": counts["all"]["trainable"]}

    run_section(report, "build", build_model, args.json)
    if "model" not in built:
        return 1
    model = built.pop("model")
    if args.demo:
        return demo_main(model, device, args, report, start)
    for batch in args.batch:
        run_section(report, f"train_batch{batch}", functools.partial(train, model, device, args, batch), args.json)
    run_section(report, "generate", functools.partial(generate, model, device, args), args.json)
    llm_config = model.llm._base().config.to_dict()
    del model  # vLLM takes the memory it is given; give it the card back (run_section collects)
    run_section(report, "vllm", functools.partial(vllm_decode, args, llm_config), args.json)
    return finish(report, ["build", *(f"train_batch{b}" for b in args.batch), "generate", "vllm"], start, args.json)


if __name__ == "__main__":
    sys.exit(main())
