"""Matmul throughput at an LLM's linear-layer shapes, by rows per call: how much a bigger batch can buy.

    OMP_NUM_THREADS=1 python bench/matmul.py                 # SmolLM2-135M's widths, bf16 and fp32
    python bench/matmul.py --tiny --repeats 1                # the CI smoke run

Why: token-budget batching and packing make fewer, larger LLM calls.  That pays where a small call
leaves the hardware idle (a GPU at a few hundred rows); where throughput is already flat from
one batch's rows (bf16 on one CPU core), only the padding they remove can speed a step up.  Each
variant multiplies ``rows`` x ``hidden`` by the MLP's up (``hidden -> intermediate``) and down
(``intermediate -> hidden``) weights, as many times as make about the same work for every
variant; the rate column is GFLOP/s and the ratio compares each variant's time with the first
``--rows`` value's (outputs differ by shape, so they are not compared).
"""

from __future__ import annotations

import argparse
import sys

import torch

from harness import Variant, add_common_args, compare, write_json


def mlp_pair(rows: int, hidden: int, intermediate: int, dtype: torch.dtype, calls: int):
    """``calls`` up-then-down products of ``rows`` rows (so every variant does about the same work per timing)."""
    x = torch.randn(rows, hidden, dtype=dtype)
    up = torch.randn(intermediate, hidden, dtype=dtype)
    down = torch.randn(hidden, intermediate, dtype=dtype)

    def run() -> float:
        total = 0.0
        for _ in range(calls):
            total += float((x @ up.t() @ down.t()).float().abs().mean())
        return total

    return run, calls * 4.0 * rows * hidden * intermediate / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--hidden", type=int, default=576, help="LLM width (SmolLM2-135M: 576)")
    parser.add_argument("--intermediate", type=int, default=1536, help="MLP width (SmolLM2-135M: 1536)")
    parser.add_argument("--rows", type=int, nargs="*", default=None,
                        help="rows per call (default: one clip, one batch of 4, a 16-clip token budget)")
    parser.add_argument("--dtypes", nargs="*", default=["bfloat16", "float32"])
    args = parser.parse_args(argv)
    hidden, intermediate = (64, 128) if args.tiny else (args.hidden, args.intermediate)
    rows = args.rows or ([8, 32] if args.tiny else [170, 680, 2720])  # ~170 LLM positions per demo row
    torch.set_num_threads(1)
    results = []
    for name in args.dtypes:
        dtype = getattr(torch, name)
        variants = []
        for m in rows:
            run, gflop = mlp_pair(m, hidden, intermediate, dtype, calls=max(1, max(rows) // m))
            variants.append(Variant(f"{m} rows", run, expect_equal=False, units=gflop))
        results.append(
            compare(
                f"MLP matmuls ({hidden} -> {intermediate} -> {hidden}), {name}, torch threads {torch.get_num_threads()}",
                variants,
                baseline=variants[0].name,
                repeats=args.repeats,
                unit="GFLOP",
            ).to_dict()
        )
    write_json(args.json, {"rows": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
