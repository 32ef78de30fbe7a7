"""GPU throughput at the paper's shapes with random weights: adapter-training samples/s and MFU, memory, decoding.

    bash bench/gpu.sh                      # one GPU, < 8 min, no downloads
    python bench/gpu.py --tiny --steps 1   # the tiny shapes on CPU: the CI smoke run

Shapes (``toolkit/presets``; built on the meta device, then materialised on the device and filled
with random values, so nothing is downloaded): the Whisper-large-v3 encoder (frozen, bf16), the
6-layer DeSTA2.5 Q-Former (fp32 weights under bf16 autocast, trained), a Llama-3.1-8B-shaped LLM
(frozen, bf16).  ``--tiny``: the tiny Whisper / Llama of the asset cache and a 1-layer Q-Former.

Prints, as one JSON object (``--json`` writes it too):

- ``train``: adapter-training steps (encoder forward, Q-Former forward + backward, LLM forward +
  backward to the audio vectors, AdamW) on synthetic conversations: samples/s, step s (median,
  min-max over ``--steps``), model FLOPs per step and MFU against ``--peak-tflops`` (default: the
  card's dense bf16 peak where known); peak memory;
- ``generate``: greedy decoding of ``--gen-n`` prompts, ``--gen-tokens`` new tokens each, batched
  and one by one (tokens/s, ratio); end of sequence is ignored so every run makes the same number
  of tokens;
- ``vllm``: vLLM's offline engine on the same LLM shape (``load_format=dummy``: random weights,
  no files) where vLLM is installed and a GPU is present.

FLOPs are counted from the shapes (matmuls as 2 x multiply-adds; backward = 2 x forward for the
trained adapter, 1 x forward for the frozen LLM, which only passes gradients back to its inputs;
attention score and value products included; the frozen encoder runs forward only).
"""

from __future__ import annotations

import toolkit  # noqa: F401  (first: passive OpenMP waiting, set before torch loads)

import argparse
import json
import statistics
import sys
import tempfile
import time
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


def build(tiny: bool, device: torch.device) -> Any:
    from toolkit.assets import asset_dir
    from toolkit.models.lalm import LALM
    from toolkit.models.loading import skip_weights

    if tiny:
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
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        # Buffers computed at construction (rotary frequencies) were left on meta: rebuild those modules' buffers.
        for m in model.modules():
            if hasattr(m, "inv_freq") and hasattr(m, "config"):
                fresh = type(m)(m.config)
                for name, b in fresh.named_buffers(recurse=False):
                    getattr(m, name).copy_(b)
    if not tiny:
        model.encoder.to(torch.bfloat16)
    return model


def conversations(n: int, text_tokens: int, response_tokens: int, vocab: int, seed: int) -> list[Any]:
    """Synthetic tokenized conversations: prompt, one audio slot, transcript-like text, a supervised response."""
    from toolkit.models.chat import IGNORE_INDEX, TokenizedConversation

    g = torch.Generator().manual_seed(seed)
    convs = []
    for _ in range(n):
        ids = torch.randint(10, vocab - 10, (text_tokens + response_tokens,), generator=g).tolist()
        labels = [IGNORE_INDEX] * text_tokens + ids[text_tokens:]
        convs.append(TokenizedConversation(input_ids=ids, labels=labels, audio_slots=[8]))
    return convs


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def step_flops(model: Any, batch: int, frames: int, seq: int) -> float:
    """Model FLOPs of one adapter-training step (see the module docstring)."""
    llm_cfg = model.llm._base().config
    layers, width = int(llm_cfg.num_hidden_layers), int(llm_cfg.hidden_size)
    llm_matmul = parameter_count(model.llm) - parameter_count(model.llm._base().get_input_embeddings())
    llm_fwd = 2 * llm_matmul * seq + 2 * 2 * layers * seq * seq * width  # weights + causal QK^T and AV (full square)
    enc_cfg = model.encoder.encoder.config if hasattr(model.encoder, "encoder") else None
    enc_fwd = 2 * parameter_count(model.encoder) * frames
    if enc_cfg is not None:
        enc_fwd += 2 * 2 * int(enc_cfg.encoder_layers) * frames * frames * int(enc_cfg.d_model)
    adapter_fwd = 2 * parameter_count(model.adapter) * frames  # cross-attention reads every frame of every tap
    return float(batch * (enc_fwd + 3 * adapter_fwd + 2 * llm_fwd))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train(model: Any, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    from toolkit.models.encoders.base import EncoderOutput  # noqa: F401  (the encoder runs inside forward)

    fx_frames = int(args.seconds * 100)  # log-mel frames at 100/s; the encoder halves them
    n_mels = (
        int(getattr(getattr(model.encoder, "encoder", None), "config", None).num_mel_bins)
        if hasattr(model.encoder, "encoder")
        else 80
    )
    features = {
        "features": torch.randn(args.batch, n_mels, fx_frames, device=device),
        "feature_lengths": torch.full((args.batch,), fx_frames, dtype=torch.long, device=device),
    }
    vocab = int(model.llm._base().config.vocab_size)
    convs = conversations(args.batch, args.text_tokens, args.response_tokens, vocab, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    model.train()
    model.encoder.eval()
    model.llm.eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        with autocast:
            out = model(conversations=convs, features=features, pack_length=args.pack_length)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            losses.append(float(out["loss"].detach()))
    n_audio = int(model.adapter.num_queries) if hasattr(model.adapter, "num_queries") else 0
    seq = args.text_tokens + args.response_tokens + n_audio
    flops = step_flops(model, args.batch, fx_frames // 2, seq)
    med = statistics.median(times)
    peak = args.peak_tflops
    res = {
        "batch": args.batch,
        "seconds_per_clip": args.seconds,
        "llm_tokens_per_sample": seq,
        "steps": len(times),
        "step_s_median": med,
        "step_s_min": min(times),
        "step_s_max": max(times),
        "samples_per_s": args.batch / med,
        "tflops_per_step": flops / 1e12,
        "achieved_tflops": flops / med / 1e12,
        "loss_finite": all(map(_finite, losses)),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }
    res["mfu"] = res["achieved_tflops"] / peak if peak else None
    return res


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


def vllm_decode(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """vLLM on the same LLM shape with dummy weights; skipped (with the reason) without vLLM or a GPU."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return {"skipped": "vLLM is not installed (bash tools/install.sh --vllm)"}
    if not torch.cuda.is_available():
        return {"skipped": "no GPU: vLLM's CPU engine is timed by bench/selfgen.py --vllm instead"}
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    config = model.llm._base().config.to_dict()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke run)")
    parser.add_argument("--batch", type=int, default=None, help="clips per training step (default 16; --tiny 2)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per clip (default 10; --tiny 1)")
    parser.add_argument(
        "--text-tokens", type=int, default=None, help="prompt + transcript tokens (default 160; --tiny 16)"
    )
    parser.add_argument("--response-tokens", type=int, default=None, help="supervised tokens (default 64; --tiny 8)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pack-length", type=int, default=None, help="pack rows (flash-attention varlen on GPU)")
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
        ("batch", 16, 2),
        ("seconds", 10.0, 1.0),
        ("text_tokens", 160, 16),
        ("response_tokens", 64, 8),
        ("gen_n", 16, 2),
        ("gen_tokens", 64, 4),
    ):
        if getattr(args, key) is None:
            setattr(args, key, small if tiny else full)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    if args.peak_tflops is None and device.type == "cuda":
        args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in card), None)
    if device.type == "cpu":
        torch.set_num_threads(1)
    start = time.perf_counter()
    model = build(tiny, device)
    report: dict[str, Any] = {
        "device": card,
        "shapes": "tiny" if tiny else "whisper-large-v3 + qformer-6 + llama-3.1-8b",
        "torch": torch.__version__,
        "peak_tflops": args.peak_tflops,
        "params": {k: v["total"] for k, v in model.parameter_counts().items()},
        "trainable": model.parameter_counts()["all"]["trainable"],
        "build_s": time.perf_counter() - start,
    }
    report["train"] = train(model, device, args)
    report["generate"] = generate(model, device, args)
    report["vllm"] = vllm_decode(args, model)
    report["total_s"] = time.perf_counter() - start
    print(json.dumps(report, indent=2))
    write_json(args.json, report)
    if not report["train"]["loss_finite"]:
        print("training loss was not finite", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
