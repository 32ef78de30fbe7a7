"""Self-generation throughput: batched ``hf`` generation against batch size 1 on the same prompts, interleaved.

    python bench/selfgen.py [--model DIR] [--n 16] [--batch 16] [--max-new-tokens 48] [--dtype bfloat16] [--vllm]
    python bench/selfgen.py --tiny        # the tiny random-init Llama, 4 prompts, 8 tokens: the CI smoke run

Prints rows/s per variant with spreads and the ratio to one-by-one (one torch thread). Answers are
compared with the one-by-one ones: equal in float32, allowed to part in bf16 (batched matmuls round
differently). ``--vllm`` adds the vllm backend (all rows in one call) when vLLM is installed.
"""

from __future__ import annotations

import toolkit  # noqa: F401  (first: passive OpenMP waiting, set before torch loads)

import argparse
import sys

from harness import Variant, add_common_args, compare, write_json


def prompts(n: int) -> list[list[dict]]:
    seeds = [
        "[00:00-00:03] Turn left at the next corner. (Gender: Female, Accent: American, Duration: 3s)",
        "[00:00-00:05] (Audio category: dog, Duration: 5s)",
        "[00:00-00:02] (Instrument: piano, Note: C4, Duration: 2s)",
        "[00:00-00:04] The meeting starts at noon. (Gender: Male, Speed: fast, Duration: 4s)",
    ]
    asks = [
        "Describe the audio.",
        "What is the speaker's mood?",
        "Summarize the content in one sentence.",
        "What could be happening here?",
    ]
    return [[{"role": "user", "content": f"{seeds[i % 4]}\n\n{asks[(i // 4) % 4]}"}] for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    import torch

    from toolkit.assets import asset_dir
    from toolkit.config import cache_dir
    from toolkit.models.chat_engines import CHAT_ENGINES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument(
        "--model", default=None, help="HF model dir (default SmolLM2-135M-Instruct; --tiny the tiny Llama)"
    )
    parser.add_argument("--n", type=int, default=None, help="prompts (default 16; --tiny 4)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 48; --tiny 8")
    parser.add_argument("--dtype", default=None, help="default bfloat16 (--tiny float32)")
    parser.add_argument("--vllm", action="store_true")
    args = parser.parse_args(argv)
    model = args.model or str(
        asset_dir("tiny-llama") if args.tiny else cache_dir() / "models" / "smollm2-135m-instruct"
    )
    n = args.n or (4 if args.tiny else 16)
    dtype = args.dtype or ("float32" if args.tiny else "bfloat16")
    gen = {"max_new_tokens": args.max_new_tokens or (8 if args.tiny else 48), "do_sample": False}
    torch.set_num_threads(1)
    backend = CHAT_ENGINES.build(
        {"name": "hf", "llm": {"name": "hf_causal_lm", "model_path": model, "dtype": dtype}, "generation": gen}
    )
    convs = prompts(n)

    def run(engine, batch: int):
        def go() -> list[str]:
            return [g.text for i in range(0, n, batch) for g in engine.generate(convs[i : i + batch])]

        return go

    exact = dtype in ("float32", "fp32")
    variants = [
        Variant("one by one", run(backend, 1), units=n),
        Variant(f"batch {args.batch}", run(backend, args.batch), expect_equal=exact, units=n),
    ]
    if args.vllm:
        # on CPU vLLM reserves gpu_memory_utilization x system RAM for its KV cache: keep it modest
        vb = CHAT_ENGINES.build(
            {"name": "vllm", "llm": {"name": "hf_causal_lm", "model_path": model}, "generation": gen, "dtype": dtype,
             "gpu_memory_utilization": 0.3}
        )
        variants.append(Variant("vllm (all rows)", run(vb, n), expect_equal=False, units=n))
    print(
        f"selfgen: {model} ({dtype}), {n} prompts, {gen['max_new_tokens']} new tokens at most, "
        f"torch threads {torch.get_num_threads()}"
    )
    result = compare(
        "self-generation (hf backend, greedy)", variants, baseline="one by one", repeats=args.repeats, unit="rows"
    )
    write_json(args.json, {"model": model, "dtype": dtype, "n": n, **result.to_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
