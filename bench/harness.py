"""The one benchmark harness: interleaved variants, repeats, spreads, a named baseline, outputs compared.

Every benchmark under ``bench/`` describes its variants as :class:`Variant` objects (a name and a
zero-argument callable that does the timed work once and returns what it computed) and hands them
to :func:`compare`.  Why this shape:

- Variants run **interleaved** (round ``r`` runs every variant once, in an order rotated by ``r``),
  so load from other processes on a shared machine lands on all of them alike instead of on
  whichever variant happened to run while a neighbour was busy.
- One untimed warm-up call per variant (lazy imports, allocator growth, first-call kernels), then
  ``repeats`` timed calls; the **median** is the figure and **min-max** the spread.
- Ratios are ``baseline median / variant median`` (>1: the variant is faster), both measured in
  the same run, against the baseline named by the benchmark.
- Each variant's output is compared with the baseline's (token-equal for text and ids, max abs
  diff for numbers and tensors), so a faster variant that computes something else is caught:
  a variant marked ``expect_equal`` whose output differs makes :func:`compare` raise after printing.

The machine's other load is not controlled here; spreads say how much it moved the figures.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class OutputMismatch(AssertionError):
    """A variant that must compute what the baseline computes did not."""


@dataclass
class Variant:
    """One way of doing the benchmark's work.

    Args:
        name: shown in the table (and used as the baseline's name).
        run: does the work once and returns its output (compared with the baseline's).
        expect_equal: the output must equal the baseline's (within ``atol``); False for variants
            that compute something else on purpose (the difference is still printed).
        units: how many items (samples, tokens) one call processes, for the rate column.
        atol: tolerance for numeric outputs (0: exact).
    """

    name: str
    run: Callable[[], Any]
    expect_equal: bool = True
    units: float | None = None
    atol: float = 0.0
    times: list[float] = field(default_factory=list)
    output: Any = None
    peak_mib: float | None = None


@dataclass
class Result:
    """Timings and comparisons of one :func:`compare` call."""

    title: str
    baseline: str
    unit: str
    rows: list[dict[str, Any]]

    def row(self, name: str) -> dict[str, Any]:
        for r in self.rows:
            if r["variant"] == name:
                return r
        raise KeyError(f"no variant '{name}' in {[r['variant'] for r in self.rows]}")

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "baseline": self.baseline, "unit": self.unit, "rows": self.rows}


def difference(a: Any, b: Any) -> float:
    """0.0 when equal; max abs diff for numbers/tensors/arrays; inf for unequal text, ids or shapes."""
    if isinstance(a, (str, bytes, bool)) or a is None:
        return 0.0 if a == b else math.inf
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return math.inf
        return max((difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, int) and isinstance(b, int):
        return 0.0 if a == b else math.inf
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return math.inf
        return max((difference(x, y) for x, y in zip(a, b)), default=0.0)
    if hasattr(a, "shape") and hasattr(b, "shape"):  # torch / numpy
        import numpy as np

        x = a.detach().float().cpu().numpy() if hasattr(a, "detach") else np.asarray(a, dtype=np.float64)
        y = b.detach().float().cpu().numpy() if hasattr(b, "detach") else np.asarray(b, dtype=np.float64)
        if x.shape != y.shape:
            return math.inf
        return float(np.max(np.abs(x - y))) if x.size else 0.0
    try:
        return abs(float(a) - float(b))
    except (TypeError, ValueError):
        return 0.0 if a == b else math.inf


def _cuda_peak_reset() -> bool:
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return True


def _cuda_peak() -> float:
    import torch

    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def compare(
    title: str,
    variants: Sequence[Variant],
    baseline: str,
    repeats: int = 5,
    warmup: int = 1,
    unit: str = "items",
    out: Any = None,
    raise_on_mismatch: bool = True,
) -> Result:
    """Run ``variants`` interleaved, print the table and return it; raise if an ``expect_equal`` output differs.

    ``repeats`` timed rounds after ``warmup`` untimed ones.  On CUDA each variant's peak memory is
    taken around its own calls; on CPU the process peak is monotonic, so no per-variant figure.
    ``raise_on_mismatch=False`` reports a mismatch in the table and in each row's ``within_atol``
    instead of raising, for callers that must keep the timings of a run that cannot be repeated.
    """
    out = out or sys.stdout
    names = [v.name for v in variants]
    if baseline not in names:
        raise ValueError(f"baseline '{baseline}' is not one of the variants {names}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for v in variants:
        v.times = []
    for r in range(warmup + repeats):
        shift = r % len(variants)
        for v in list(variants[shift:]) + list(variants[:shift]):
            cuda = _cuda_peak_reset()
            start = time.perf_counter()
            output = v.run()
            if cuda:
                import torch

                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if cuda:
                v.peak_mib = max(v.peak_mib or 0.0, _cuda_peak())
            if r < warmup:
                v.output = output
                continue
            v.times.append(elapsed)
            v.output = output
    base = next(v for v in variants if v.name == baseline)
    base_median = statistics.median(base.times)
    rows, failures = [], []
    for v in variants:
        med = statistics.median(v.times)
        diff = difference(base.output, v.output)
        same = diff <= v.atol
        if v.expect_equal and not same:
            failures.append(f"{v.name}: output differs from {baseline}'s by {diff:g} (allowed {v.atol:g})")
        rows.append(
            {
                "variant": v.name,
                "median_s": med,
                "min_s": min(v.times),
                "max_s": max(v.times),
                "repeats": len(v.times),
                "ratio": base_median / med if med > 0 else math.inf,
                "rate": (v.units / med) if v.units else None,
                "output_diff": diff,
                "expect_equal": v.expect_equal,
                "atol": v.atol,
                "within_atol": same,
                "peak_mib": v.peak_mib,
            }
        )
    result = Result(title, baseline, unit, rows)
    print_table(result, out)
    if failures and raise_on_mismatch:
        raise OutputMismatch("; ".join(failures))
    return result


def print_table(result: Result, out: Any = None) -> None:
    out = out or sys.stdout
    width = max(len(r["variant"]) for r in result.rows) + 2
    rate_w = max(12, len(result.unit) + 2)
    print(
        f"\n{result.title}  (baseline: {result.baseline}; ratio = baseline median / variant median, >1 is faster)",
        file=out,
    )
    print(
        f"  {'variant':<{width}} {'median s':>9} {'min-max s':>15} {result.unit + '/s':>{rate_w}} {'ratio':>6}"
        "  output vs baseline",
        file=out,
    )
    for r in result.rows:
        rate = f"{r['rate']:.2f}" if r["rate"] is not None else "-"
        diff = r["output_diff"]
        check = "equal" if diff == 0 else f"max diff {diff:.2g}" if math.isfinite(diff) else "DIFFERENT"
        if not r["expect_equal"]:
            check += " (expected to differ)"
        elif not r.get("within_atol", True):
            check += f" (OVER the allowed {r['atol']:.2g})"
        peak = f"  peak {r['peak_mib']:.0f} MiB" if r["peak_mib"] is not None else ""
        spread = f"{r['min_s']:.3f}-{r['max_s']:.3f}"
        print(
            f"  {r['variant']:<{width}} {r['median_s']:9.3f} {spread:>15} {rate:>{rate_w}} {r['ratio']:6.2f}"
            f"  {check}{peak}",
            file=out,
        )
    print(f"  ({result.rows[0]['repeats']} timed repeats each, interleaved)", file=out)


def write_json(path: str | None, payload: Any) -> None:
    """Also write the results as JSON (``--json PATH`` of every benchmark)."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, default=str)


def add_common_args(parser: Any, repeats: int = 5) -> None:
    """The flags every benchmark shares."""
    parser.add_argument("--repeats", type=int, default=repeats, help="timed repeats per variant (after one warm-up)")
    parser.add_argument("--tiny", action="store_true", help="tiny random-init models and sizes: the CI smoke run")
    parser.add_argument("--json", default=None, help="also write the results here")


# ------------------------------------------------------------------ models and clips the benchmarks share


def bench_model(tiny: bool = False, dtype: str = "bfloat16", attn: str = "eager") -> Any:
    """The demo architecture (Whisper tiny.en + 2-layer Q-Former + SmolLM2-135M, untrained adapter) or a tiny one.

    ``tiny``: random-init tiny Whisper / Q-Former / Llama from the asset cache, fp32 (CI).
    """
    import torch

    from toolkit.assets import asset_dir
    from toolkit.config import cache_dir
    from toolkit.models.lalm import LALM

    torch.manual_seed(0)
    models = cache_dir() / "models"
    if tiny:
        parts = {
            "encoder": {"name": "whisper", "model_path": str(asset_dir("tiny-whisper")), "tapped_layers": [0, 1, 2, 3]},
            "adapter": {"name": "qformer", "num_layers": 1, "num_queries": 4, "num_heads": 4, "intermediate_size": 64},
            "llm": {"name": "hf_causal_lm", "model_path": str(asset_dir("tiny-llama")), "dtype": "float32"},
        }
    else:
        parts = {
            "encoder": {"name": "whisper", "model_path": str(models / "whisper-tiny.en")},
            "adapter": {"name": "qformer", "num_layers": 2, "num_queries": 64, "intermediate_size": 1536},
            "llm": {
                "name": "hf_causal_lm",
                "model_path": str(models / "smollm2-135m-instruct"),
                "dtype": dtype,
                "attn_implementation": attn,
            },
        }
    return LALM.from_config(
        {
            **parts,
            "transcriber": {"name": "given"},
            "lalm": {"system_prompt": "Focus on the audio clips and instructions."},
        }
    ).eval()


def speech_clips(n: int) -> list[str]:
    """Paths of ``n`` real speech clips (pocketsphinx test data, cycled); exits naming the package when absent."""
    import glob

    paths = sorted(glob.glob("/usr/share/pocketsphinx/test/data/*/*.wav"))
    if not paths:
        sys.exit("no clips under /usr/share/pocketsphinx/test/data: apt-get install pocketsphinx-testdata")
    return [paths[i % len(paths)] for i in range(n)]
