"""Decoding throughput: batched against one-by-one ``LALM.generate`` on the same inputs, interleaved, tokens compared.

    python bench/decode.py [--model EXPORT_DIR] [--n 16] [--batch 16] [--max-new-tokens 128] [--repeats 5]
    python bench/decode.py --tiny          # tiny random-init models, 4 clips, 8 tokens: the CI smoke run

Without ``--model`` it builds the demo architecture (real Whisper tiny.en + SmolLM2-135M-Instruct,
untrained Q-Former) so it runs before any training. Clips are real pocketsphinx/flite audio with
given transcripts (ASR is timed separately by the transcriber, not here), sorted by duration as
the decode stage batches them.

Outputs are compared token for token with the one-by-one baseline; in bf16 batched (left-padded)
matmuls round differently, so answers may part after some tokens and only ``--dtype float32``
requires equality.  Expect the batched gain to grow with ``--max-new-tokens``: the encoder and the
prompt prefill gain little from batching on one CPU thread, the decoding steps gain most.
"""

from __future__ import annotations

import toolkit  # noqa: F401  (first: passive OpenMP waiting, set before torch loads)

import argparse
import sys

from harness import Variant, add_common_args, bench_model, compare, speech_clips, write_json


def main(argv: list[str] | None = None) -> int:
    import torch

    from toolkit.audio import load_audio
    from toolkit.models.lalm import LALM

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--model", default=None, help="export dir (default: the demo architecture, untrained adapter)")
    parser.add_argument("--n", type=int, default=None, help="conversations (default 16; --tiny 4)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="answer budget (default 128; --tiny 8)")
    parser.add_argument(
        "--dtype", default="bfloat16", help="LLM dtype; float32 makes batched and one-by-one outputs identical"
    )
    parser.add_argument("--attn", default="eager", help="LLM attention (eager is faster than sdpa for SmolLM2 on CPU)")
    args = parser.parse_args(argv)
    n = args.n or (4 if args.tiny else 16)
    max_new = args.max_new_tokens or (8 if args.tiny else 128)
    torch.set_num_threads(1)
    model = LALM.from_pretrained(args.model) if args.model else bench_model(args.tiny, args.dtype, args.attn)
    exact = model.llm.dtype == torch.float32
    waves = sorted((load_audio(p) for p in speech_clips(n)), key=len)
    asks = ["What is said?", "Describe the speaker.", "Summarize the audio.", "What is the mood?"]
    convs = [
        [
            {
                "role": "user",
                "content": f"<|AUDIO|>\n{asks[i % 4]}",
                "audios": [{"audio": w, "text": "a short transcript"}],
            }
        ]
        for i, w in enumerate(waves)
    ]
    gen = {"max_new_tokens": max_new, "do_sample": False}
    tokens = []

    def run(batch: int):
        def go() -> list[str]:
            outs = []
            for i in range(0, len(convs), batch):
                outs += model.generate(convs[i : i + batch], generation=gen, return_details=True)
            tokens.append(sum(o["num_tokens"] for o in outs))
            return [o["text"] for o in outs]

        return go

    variants = [
        Variant("one by one", run(1), units=n),
        Variant(f"batch {args.batch}", run(args.batch), expect_equal=exact, units=n),
    ]
    print(
        f"decode: {n} conversations, {max_new} new tokens at most, LLM {model.llm.dtype}, "
        f"torch threads {torch.get_num_threads()}"
    )
    result = compare(
        "decode (LALM.generate, greedy)", variants, baseline="one by one", repeats=args.repeats, unit="conversations"
    )
    texts = [v.output for v in variants]
    same = sum(a == b for a, b in zip(*texts))
    print(f"  identical answers: {same} of {n}; new tokens per pass: {min(tokens)}-{max(tokens)}")
    write_json(args.json, {"n": n, "max_new_tokens": max_new, "identical_answers": same, **result.to_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
