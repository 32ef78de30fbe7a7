"""Score a prediction file in a benchmark's own format, by the benchmark's official rules.

    python -m toolkit.bin.score_predictions --benchmark mmau --predictions mmau-test-mini_results.json \\
        [--subset S] [--judge name=openai model=gpt-4o-mini ...] [--option key=value ...] [--seed N] [--out DIR]

Writes ``DIR/per_item.jsonl`` (one row per item: ``id``, ``extracted``, ``score``, ``reason``) and
``DIR/summary.json`` (the official aggregate figures under the official names) and prints the
summary lines as the official scorer prints them.  ``--judge`` builds a judge of
:mod:`toolkit.score.judges` from ``key=value`` pairs (``name=`` picks hf, vllm or openai) for the
judged parts; ``--option`` passes a benchmark's own options (``prediction_key=model_output``).
Values are read as YAML scalars (``3`` is a number, ``[a, b]`` a list).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def parse_pairs(pairs: list[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; values parsed as YAML scalars."""
    import yaml

    from toolkit.config import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"{flag} {pair!r}: expected key=value (for example {flag} name=openai)")
        key, value = pair.split("=", 1)
        try:
            out[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True,
                        help="mmau, mmar, dynamic_superb, voicebench, speech_ifeval, sakura")
    parser.add_argument("--predictions", required=True, type=Path, help="the file the official scorer reads")
    parser.add_argument("--subset", default=None,
                        help="the benchmark's part the file holds, where rules differ by part")
    parser.add_argument("--judge", nargs="*", default=[], metavar="KEY=VALUE",
                        help="judge for judged parts, e.g. name=openai model=gpt-4o-mini "
                             "base_url=http://127.0.0.1:8000/v1")
    parser.add_argument("--option", nargs="*", default=[], metavar="KEY=VALUE", help="benchmark options")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw the official code makes unseeded")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <predictions stem>.scored/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from toolkit.config import _install_user_error_hook

    args = build_parser().parse_args(argv)
    _install_user_error_hook()

    from toolkit.score.predictions import build_prediction_scorer, write_official_score

    judge_node = parse_pairs(args.judge, "--judge")
    options = parse_pairs(args.option, "--option")
    judge = None
    if judge_node:
        from toolkit.config import ConfigError
        from toolkit.score.judges import build_judge

        if "name" not in judge_node:
            raise ConfigError("--judge: name=hf|vllm|openai is required, e.g. --judge name=openai model=gpt-4o-mini")
        judge = build_judge(judge_node)
    scorer = build_prediction_scorer(args.benchmark, args.subset, judge, args.seed, options)
    result = scorer.score_file(args.predictions)
    out = args.out or args.predictions.with_name(args.predictions.stem + ".scored")
    per_item, summary = write_official_score(result, out)
    print("\n".join(result.lines))
    print(f"[{scorer.name}: rules of {scorer.official}; per item: {per_item}; summary: {summary}]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
