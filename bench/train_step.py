"""Training-step benchmark: one epoch of forward + backward + AdamW per variant, interleaved, losses compared.

    python bench/train_step.py                       # demo config (Whisper tiny.en + SmolLM2-135M), 32 clips of 1-6 s
    python bench/train_step.py --tiny                # random-init tiny models, 4 clips: the CI smoke run
    OMP_NUM_THREADS=1 nice -n 10 python bench/train_step.py --clips 48 --repeats 5 --json /tmp/train_step.json
    python bench/train_step.py --breakdown           # also the baseline's step phase by phase (encoder, adapter, LLM)

Configs (components from ``toolkit/conf``):

- ``demo``: real Whisper tiny.en (frozen) + the small Q-Former + real SmolLM2-135M-Instruct (bf16);
- ``tiny`` (``--tiny``): random-init tiny Whisper + tiny Q-Former + tiny Llama (fp32).

Variants, each over the same synthetic clips (noise of 1-6 s by default, 3-30 word transcripts,
20-60 word answers), batches collated beforehand (collation runs in data-loader workers):

- ``unpacked default`` (the baseline): ``batch_size`` rows per batch, length-bucketed, true-length
  encoder input, LM head at target positions only: what ``train.yaml`` does today;
- ``no bucketing``: plain shuffled batches;
- ``full LM head``: vocabulary logits at every position;
- ``30 s padding``: every clip padded to Whisper's 3000-frame window (``encoder.reference_compatible``);
  its encoder sees other input, so its loss differs by design;
- ``encoder cache``: cached (fp16) encoder states instead of running the encoder;
- ``token budget``: ``train.batch_tokens`` batches (rows x longest row <= ``--batch-tokens``), bucketed;
- ``token budget + packing``: the same batches packed into sequences of <= ``--pack-length`` positions.

The learning rate is 0, so every AdamW step runs its full arithmetic but the weights stay put, and
dropout is off (its masks depend on the batch layout); each
variant's output is then the token-mean loss of the epoch at the same weights, which must equal
the baseline's whatever the batch layout (bf16 LLM: within ``--atol``).
"""

from __future__ import annotations

import toolkit  # noqa: F401  (first: passive OpenMP waiting, set before torch loads)

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import Variant, add_common_args, compare, write_json
from toolkit.config import cache_dir, load_config
from toolkit.models.encoders.base import EncoderOutput
from toolkit.models.lalm import LALM
from toolkit.train.data import AQADataset, BucketBatchSampler, Collator, read_rows, split_cached

CONFIGS = {
    "tiny": {
        "encoder": "tiny_whisper",
        "adapter": "qformer_tiny",
        "llm": "tiny_llama",
        "needs": ["tiny-whisper", "tiny-llama"],
    },
    "demo": {
        "encoder": "whisper_tiny_en",
        "adapter": "qformer_small",
        "llm": "smollm2_135m_instruct",
        "needs": ["whisper-tiny.en", "smollm2-135m-instruct"],
    },
}
WORDS = "the a dog barks loudly while music plays softly in a room with people talking about weather and news".split()


def make_clips(root: Path, n: int, min_s: float, max_s: float, seed: int = 0) -> Path:
    """``n`` noise clips and AQA rows for them; returns the JSONL path."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        dur = float(rng.uniform(min_s, max_s))
        sf.write(root / f"c{i}.wav", (rng.standard_normal(int(16000 * dur)) * 0.1).astype(np.float32), 16000)
        answer = " ".join(rng.choice(WORDS, int(rng.integers(20, 60))))
        transcript = " ".join(rng.choice(WORDS, int(rng.integers(3, 30))))
        rows.append(
            {
                "id": f"c{i}",
                "response": answer,
                "messages": [
                    {
                        "role": "user",
                        "content": "<|AUDIO|>\nDescribe the audio.",
                        "audios": [{"audio": f"c{i}.wav", "text": transcript, "duration": dur}],
                    }
                ],
            }
        )
    path = root / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def missing_assets(name: str) -> list[str]:
    return [d for d in CONFIGS[name]["needs"] if not (cache_dir() / "models" / d).is_dir()]


def build(name: str, root: Path, reference: bool = False, overrides: list[str] | None = None) -> LALM:
    spec = CONFIGS[name]
    cfg = root / f"{name}.yaml"
    cfg.write_text(
        "defaults:\n"
        + "".join(f"  - {k}: {spec[k]}\n" for k in ("encoder", "adapter", "llm"))
        + "  - transcriber: given\nlalm:\n  max_seq_len: 512\n"
    )
    torch.manual_seed(0)  # same adapter initialisation for every build
    overrides = [f"encoder.reference_compatible={str(reference).lower()}", *(overrides or [])]
    return LALM.from_config(load_config(cfg, overrides))


def collate(
    model: LALM, rows: Path, audio_root: Path, batch_size: int, bucketing: bool = True, batch_tokens: int | None = None
) -> list[dict]:
    """One epoch of collated batches, as the data-loader workers would hand them over."""
    samples, _ = read_rows(rows, audio_root=str(audio_root))
    ds = AQADataset(samples)
    count = model.audio_vector_count()
    coll = Collator(
        model.formatter,
        model.encoder.feature_extractor(),
        model.max_seq_len,
        count,
        num_tapped=model.encoder.num_tapped,
    )
    # as AQADataModule does
    tokens = [s.est_tokens + (count.seconds(s.duration) if batch_tokens else 0) for s in samples]
    sampler = BucketBatchSampler(
        [s.duration for s in samples],
        tokens,
        batch_size,
        seed=0,
        bucketing=bucketing,
        bucket_multiplier=100,
        batch_tokens=batch_tokens,
    )
    return [coll([ds[i] for i in idx]) for idx in sampler]


@torch.no_grad()
def cached(model: LALM, batches: list[dict]) -> list[dict]:
    """The same batches with encoder states as the feature cache stores them (valid frames, fp16)."""
    out = []
    model.eval()
    for b in batches:
        enc = model.encoder(**b["features"])
        mats = torch.cat(enc.hidden_states, -1).half()
        states, lengths = split_cached(
            [mats[i, : int(n)].numpy() for i, n in enumerate(enc.lengths)], model.encoder.num_tapped
        )
        out.append({**b, "features": None, "hidden_states": states, "lengths": lengths})
    return out


def epoch(model: LALM, batches: list[dict], pack_length: int | None = None, full_head: bool = False):
    """A callable running one training epoch (lr 0) and returning its token-mean loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.0, weight_decay=0.01)

    def run() -> float:
        # Dropout off (eval mode; autograd still runs): its masks depend on the batch layout, and the
        # variants' losses must be comparable. Dropout is a small share of the step's cost.
        model.eval()
        model.lm_head_on_targets_only = not full_head
        total, n = 0.0, 0
        for b in batches:
            if b["hidden_states"] is not None:
                out = model(
                    conversations=b["conversations"],
                    encoder_output=EncoderOutput(b["hidden_states"], b["lengths"]),
                    pack_length=pack_length,
                )
            else:
                out = model(conversations=b["conversations"], features=b["features"], pack_length=pack_length)
            out["loss"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += float(out["loss"].detach()) * int(out["n_targets"])
            n += int(out["n_targets"])
        model.lm_head_on_targets_only = True
        return total / n

    return run


def breakdown(model: LALM, batches: list[dict]) -> dict[str, float]:
    """Seconds of one epoch (after a warm-up epoch) per phase of the step: where training time goes."""
    import time

    if any(p.requires_grad for p in model.llm.parameters()):
        raise SystemExit("--breakdown splits the backward at the audio vectors, so it needs a frozen LLM (no LoRA)")

    import torch.nn.functional as F

    from toolkit.models.chat import IGNORE_INDEX

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.0, weight_decay=0.01)
    phases = ["encoder", "adapter forward", "LLM forward + loss", "LLM backward", "adapter backward", "optimizer"]
    seconds = dict.fromkeys(phases, 0.0)
    model.eval()
    for timed in (False, True):
        for b in batches:
            marks = [time.perf_counter()]
            with torch.no_grad():
                enc = model.encoder(**b["features"])
            marks.append(time.perf_counter())
            vectors, lengths = model.encode_audio(encoder_output=enc)
            marks.append(time.perf_counter())
            leaf = vectors.detach().requires_grad_()  # splits the backward at the audio vectors
            batch = model.assemble(b["conversations"], leaf, lengths)
            targets = batch.pop("labels")[:, 1:]
            mask = targets != IGNORE_INDEX
            hidden = model.llm.decoder_hidden_states(**batch)[:, :-1]
            logits = model.llm.lm_head(hidden[mask]).float()
            loss = F.cross_entropy(logits, targets[mask], reduction="sum") / mask.sum()
            marks.append(time.perf_counter())
            (grad,) = torch.autograd.grad(loss, leaf)
            marks.append(time.perf_counter())
            vectors.backward(grad)
            marks.append(time.perf_counter())
            opt.step()
            opt.zero_grad(set_to_none=True)
            marks.append(time.perf_counter())
            if timed:
                for name, a, z in zip(phases, marks, marks[1:]):
                    seconds[name] += z - a
    return seconds


def padding_share(batches: list[dict], model: LALM, pack_length: int | None) -> float:
    """Share of LLM positions that are padding in these batches (packed or padded layout)."""
    from toolkit.models.packing import pack_rows

    real = total = 0
    for b in batches:
        n_audio = model.adapter.num_queries if hasattr(model.adapter, "num_queries") else 0
        rows = [len(c.input_ids) + n_audio * len(c.audio_slots) for c in b["conversations"]]
        real += sum(rows)
        if pack_length is None:
            total += len(rows) * max(rows)
        else:
            bins = pack_rows(rows, pack_length)
            total += len(bins) * max(sum(rows[i] for i in g) for g in bins)
    return 1.0 - real / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--clips", type=int, default=None, help="clips per epoch (default 32; --tiny 4)")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=6.0)
    parser.add_argument("--batch_size", type=int, default=4, help="rows per batch of the unpacked default")
    parser.add_argument(
        "--batch-tokens", type=int, default=None, help="token budget (default 16 x the baseline's mean row)"
    )
    parser.add_argument(
        "--pack-length", type=int, default=None, help="longest packed sequence (default lalm.max_seq_len)"
    )
    parser.add_argument(
        "--atol", type=float, default=None, help="allowed loss difference (default 1e-4 fp32, 2e-2 bf16)"
    )
    parser.add_argument("--skip", nargs="*", default=[], help="variants to leave out")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the baseline's step phase by phase (encoder, adapter, LLM forward/backward)")
    args = parser.parse_args(argv)
    name = "tiny" if args.tiny else "demo"
    clips = args.clips or (4 if args.tiny else 32)
    missing = missing_assets(name)
    if missing:
        sys.exit(f"[{name}] needs {', '.join(missing)} in {cache_dir() / 'models'}: run python tools/prepare_assets.py")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio = root / "audio"
        audio.mkdir()
        rows = make_clips(audio, clips, args.min_seconds, args.max_seconds)
        model = build(name, root)
        bf16 = model.llm.dtype == torch.bfloat16
        atol = args.atol if args.atol is not None else (2e-2 if bf16 else 1e-4)
        base = collate(model, rows, audio, args.batch_size)
        mean_row = sum(b["stats"]["tokens"] for b in base) / max(1, sum(b["stats"]["samples"] for b in base))
        budget = args.batch_tokens or int(16 * mean_row)
        pack_length = args.pack_length or model.max_seq_len
        budget_batches = collate(model, rows, audio, batch_size=10_000, batch_tokens=budget)
        n = sum(b["stats"]["samples"] for b in base)
        plan: dict[str, tuple[Any, bool, float]] = {
            "unpacked default": (epoch(model, base), True, atol),
            "no bucketing": (epoch(model, collate(model, rows, audio, args.batch_size, bucketing=False)), True, atol),
            "full LM head": (epoch(model, base, full_head=True), True, atol),
            "encoder cache": (epoch(model, cached(model, base)), True, max(atol, 2e-2)),  # fp16 states
            "token budget": (epoch(model, budget_batches), True, atol),
            "token budget + packing": (epoch(model, budget_batches, pack_length=pack_length), True, atol),
        }
        if "30 s padding" not in args.skip:
            ref = build(name, root, reference=True)
            plan["30 s padding"] = (
                epoch(ref, collate(ref, rows, audio, args.batch_size, bucketing=False)),
                False,
                atol,
            )
        variants = [
            Variant(k, fn, expect_equal=eq, units=n, atol=tol)
            for k, (fn, eq, tol) in plan.items()
            if k not in args.skip
        ]
        counts = model.parameter_counts()["all"]
        print(
            f"[{name}] {counts['trainable']:,} trainable / {counts['total']:,} params; {clips} clips of "
            f"{args.min_seconds:g}-{args.max_seconds:g} s; baseline batch {args.batch_size} ({len(base)} steps); "
            f"token budget {budget} ({len(budget_batches)} steps), pack length {pack_length}; "
            f"torch threads {torch.get_num_threads()}"
        )
        print(
            f"  padding share of LLM positions: unpacked {padding_share(base, model, None):.1%}, token budget "
            f"{padding_share(budget_batches, model, None):.1%}, token budget + packing "
            f"{padding_share(budget_batches, model, pack_length):.1%}"
        )
        phases = None
        if args.breakdown:
            phases = breakdown(model, base)
            total = sum(phases.values())
            print(f"  the baseline's epoch by phase ({total:.2f} s): "
                  + ", ".join(f"{k} {v:.2f} s ({v / total:.0%})" for k, v in phases.items()))
        result = compare(
            f"[{name}] training epoch (forward + backward + AdamW)",
            variants,
            baseline="unpacked default",
            repeats=args.repeats,
            unit="samples",
        )
    write_json(
        args.json,
        {"config": name, "clips": clips, "batch_tokens": budget, "pack_length": pack_length, "phases_s": phases,
         **result.to_dict()},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
