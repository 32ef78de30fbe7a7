"""The issue-18 comparison table: the reference implementation beside our modes, per workload, from one run.

    git clone https://github.com/kehanlu/DeSTA2.5-Audio ~/src/desta25 && git -C ~/src/desta25 checkout 5503dfc
    bash bench/reference_venv.sh ~/src/desta25          # its own venv, in ~/src/desta25/.venv
    OMP_NUM_THREADS=1 python bench/reference.py --reference-dir ~/src/desta25
    python bench/reference.py --tiny --repeats 1        # our side only, tiny sizes: the CI smoke run

Rows (each one harness run: variants interleaved, median and min-max, ratios to the first column):

- ``train step, demo (Whisper tiny.en + SmolLM2-135M), batch 4`` and ``train step, tiny, batch 2``:
  one epoch over the same 1-6 s clips (lr 0 and dropout off, see ``bench/train_step.py``);
- ``generate, demo, 16 conversations x 64 tokens``: batched greedy generation from the clips' files;
- ``peak memory``: the process peak (RSS) of a training epoch, each variant in a fresh process of its
  own (a CPU process's peak only grows, so variants sharing one cannot be told apart; ``--no-memory``
  leaves the row out).

Columns:

- ``reference``: kehanlu/DeSTA2.5-Audio run by ``bench/reference_worker.py`` in the reference's own
  venv (``--reference-python``, default ``REFERENCE_DIR/.venv/bin/python``), as a subprocess that
  builds its model and batches with its own classes and answers one command per timed call, so it
  is interleaved with our variants like any other.  ``bench/reference_venv.sh`` makes that venv:
  what its code imports on transformers 4.49-4.57 (numpy < 2, ``datasets``, ``omegaconf``,
  ``librosa``, ``soundfile``, ``lulutils``) and, for generation, ``silero-vad`` from PyPI (the
  reference fetches it from torch.hub).  Nothing of the reference is
  copied here; without ``--reference-dir`` the column is left out and ratios are to
  ``ours, reference_compatible``.
- ``ours, reference_compatible``: every clip padded to 30 s, as the reference and its checkpoint do;
- ``ours, default``: true lengths, length bucketing, LM head at the targets only;
- ``ours, default + feature cache``: cached encoder states instead of the encoder;
- ``ours, token budget + packing``: ``train.batch_tokens`` batches packed into sequences.

Both sides use the same Q-Former shape: the reference builds its Q-Former from ``BertConfig()``
defaults, so ours is built with ``adapter.intermediate_size=3072`` here (the configs' own width is
smaller); the trainable parameter counts of both sides are printed.  Losses: ours must agree with
each other; the reference's and ``reference_compatible``'s differ from them by design (30 s input)
and from each other by their random adapter initialisations.
"""

from __future__ import annotations

import toolkit  # noqa: F401  (first: passive OpenMP waiting, set before torch loads)

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import train_step as ts
from harness import Variant, add_common_args, compare, speech_clips, write_json
from reference_worker import epoch_peak_reset, peak_mib
from toolkit.config import cache_dir

WORKER = Path(__file__).with_name("reference_worker.py")
QFORMER_WIDTH = ["adapter.intermediate_size=3072"]  # BertConfig()'s default, which the reference's Q-Former uses
REFERENCE_ENCODER_ID = "openai/whisper-tiny"  # the hub id the reference maps to Whisper-tiny's four taps
COLUMNS = [
    "reference",
    "ours, reference_compatible",
    "ours, default",
    "ours, default + feature cache",
    "ours, token budget + packing",
]


class ReferenceWorker:
    """The reference's side of one workload: a ``reference_worker.py`` process in the reference's venv."""

    def __init__(
        self, python: str, reference_dir: Path, spec: dict[str, Any], root: Path, tag: str, worker: Path = WORKER
    ):
        # the log outlives the run's scratch directory, so a failure's message can point at it
        logs = Path(tempfile.gettempdir()) / "desta-reference-logs"
        logs.mkdir(exist_ok=True)
        self.log = logs / f"reference-{tag}.log"
        spec_path = root / f"reference-{tag}.json"
        spec_path.write_text(json.dumps({"reference_dir": str(reference_dir), **spec}))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(HF_HOME=str(root / "hf-home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        self._stderr = self.log.open("w")
        self.proc = subprocess.Popen(
            [python, str(worker), str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self.info = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # the reference prints its own progress lines too
            if line.startswith("{"):
                return json.loads(line)
        code = self.proc.wait()
        self._stderr.flush()
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(
            f"the reference worker stopped (exit {code}) before answering; its log is {self.log}:\n{tail}\n"
            "Check --reference-dir (a kehanlu/DeSTA2.5-Audio checkout) and --reference-python (a venv where "
            "its code imports; bash bench/reference_venv.sh REFERENCE_DIR makes one)."
        )

    def call(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except OSError:  # it already stopped
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # still inside a command (an interrupted run): stop it
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def reference_spec(name: str, model: Any) -> dict[str, Any]:
    """What the worker needs to build the reference's model of the same shapes as ours."""
    encoder_asset, llm_asset = ts.CONFIGS[name]["needs"]
    tokenizer = model.llm.tokenizer
    # any single existing token serves: the reference overwrites these positions with audio vectors
    candidates = ("<|endoftext|>", tokenizer.pad_token, tokenizer.eos_token)
    placeholder = next((t for t in candidates if t is not None and len(tokenizer.tokenize(t)) == 1), None)
    if placeholder is None:
        raise SystemExit(f"[{name}] none of {candidates} is a single token of the LLM's tokenizer; the reference "
                         "needs one as its audio placeholder")
    return {
        "encoder_hub_id": REFERENCE_ENCODER_ID,
        "encoder_dir": str(cache_dir() / "models" / encoder_asset),
        "llm_dir": str(cache_dir() / "models" / llm_asset),
        "qformer_layers": len(model.adapter.qformer.layer),
        "prompt_size": model.adapter.num_queries,
        "placeholder_token": placeholder,
        "threads": torch.get_num_threads(),
    }


def our_train_variants(
    name: str, batch_size: int, rows: Path, audio: Path, root: Path, only: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Our model (true lengths) and the epoch callables of our four variants (or of ``only`` that one)."""
    wanted = [c for c in COLUMNS[1:] if only in (None, c)]
    if not wanted:
        raise SystemExit(f"no variant '{only}'; ours are {COLUMNS[1:]}")
    fns: dict[str, Any] = {}
    if "ours, reference_compatible" in wanted:
        compatible = ts.build(name, root, reference=True, overrides=QFORMER_WIDTH)
        fns["ours, reference_compatible"] = ts.epoch(
            compatible, ts.collate(compatible, rows, audio, batch_size, bucketing=False)
        )
        if wanted == ["ours, reference_compatible"]:  # alone (a peak-memory child): no second model
            return compatible, fns
    ours = ts.build(name, root, overrides=QFORMER_WIDTH)
    base = ts.collate(ours, rows, audio, batch_size)
    if "ours, default" in wanted:
        fns["ours, default"] = ts.epoch(ours, base)
    if "ours, default + feature cache" in wanted:
        fns["ours, default + feature cache"] = ts.epoch(ours, ts.cached(ours, base))
    if "ours, token budget + packing" in wanted:
        mean_row = sum(b["stats"]["tokens"] for b in base) / max(1, sum(b["stats"]["samples"] for b in base))
        budget = ts.collate(ours, rows, audio, batch_size=10_000, batch_tokens=int(16 * mean_row))
        fns["ours, token budget + packing"] = ts.epoch(ours, budget, pack_length=ours.max_seq_len)
    return ours, fns


def train_spec(name: str, model: Any, rows: Path, audio: Path, batch_size: int) -> dict[str, Any]:
    return {
        **reference_spec(name, model),
        "kind": "train",
        "rows": str(rows),
        "audio_root": str(audio),
        "max_seq_length": model.max_seq_len,
        "batch_size": batch_size,
    }


def peak_memory_row(name: str, batch_size: int, clips: int, root: Path, reference: dict | None) -> dict:
    """Resident-memory peak during a training epoch (after a warm-up one) per variant, each in its own process.

    Variants sharing a process cannot be told apart (their weights and caches stay resident), so each
    of ours runs in a child of this script (``--peak-of``) and the reference in a fresh worker; the
    figure includes the resident model, not the transient peaks of loading it.
    """
    audio = root / f"audio-peak-{name}"
    audio.mkdir()
    rows = ts.make_clips(audio, clips, 1.0, 6.0)
    peaks: dict[str, float] = {}
    if reference is not None:
        probe = ts.build(name, root, overrides=QFORMER_WIDTH)
        spec = train_spec(name, probe, rows, audio, batch_size)
        del probe
        worker = ReferenceWorker(reference["python"], reference["dir"], spec, root, f"peak-{name}")
        try:
            worker.call("epoch")
            peaks["reference"] = worker.call("epoch")["peak_mib"]
        finally:
            worker.close()
    for column in COLUMNS[1:]:
        cmd = [sys.executable, str(Path(__file__)), "--peak-of", column, "--peak-config", name,
               "--peak-batch", str(batch_size), "--peak-clips", str(clips)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        answer = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not answer:
            raise SystemExit(f"peak-memory child for '{column}' failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        peaks[column] = json.loads(answer[-1])["peak_mib"]
    title = f"peak memory (resident, during a train epoch), {name}, batch {batch_size}"
    print(f"\n{title}: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in peaks.items()))
    return {"title": title, "peak_mib": peaks}


def peak_of(column: str, name: str, batch_size: int, clips: int) -> int:
    """The ``--peak-of`` child: one variant alone, a warm-up epoch, then the resident peak of a second one."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio = root / "audio"
        audio.mkdir()
        rows = ts.make_clips(audio, clips, 1.0, 6.0)
        _, fns = our_train_variants(name, batch_size, rows, audio, root, only=column)
        fns[column]()  # warm-up
        epoch_peak_reset()
        fns[column]()
        print(json.dumps({"peak_mib": peak_mib()}))
    return 0


def train_row(name: str, batch_size: int, clips: int, repeats: int, root: Path, reference: dict | None) -> dict:
    if clips % batch_size:  # the reference's loader drops a partial last batch: both sides must see every clip
        raise SystemExit(f"[{name}] {clips} clips do not fill batches of {batch_size}")
    audio = root / f"audio-{name}"
    audio.mkdir()
    rows = ts.make_clips(audio, clips, 1.0, 6.0)
    ours, fns = our_train_variants(name, batch_size, rows, audio, root)
    atol = 2e-2 if ours.llm.dtype == torch.bfloat16 else 1e-4
    variants = []
    worker = None
    if reference is not None:
        worker = ReferenceWorker(reference["python"], reference["dir"], train_spec(name, ours, rows, audio, batch_size),
                                 root, f"train-{name}")
        variants.append(Variant("reference", lambda: worker.call("epoch")["loss"], units=clips))
    variants += [Variant(k, fn, expect_equal=False, units=clips) for k, fn in fns.items()]
    counts = {"ours": ours.parameter_counts()["all"]["trainable"]}
    if worker is not None:
        counts["reference"] = worker.info["parameters"]["trainable"]
    print(f"\n[{name}] trainable parameters: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    try:
        result = compare(
            f"train step, {name}, batch {batch_size}, {clips} clips of 1-6 s",
            variants,
            baseline=variants[0].name,
            repeats=repeats,
            unit="samples",
        )
    finally:
        if worker is not None:
            worker.close()
    # ours on true lengths must agree with each other (30 s input differs by design)
    losses = {v.name: v.output for v in variants if v.name.startswith("ours") and "compatible" not in v.name}
    spread = max(losses.values()) - min(losses.values())
    if spread > max(atol, 2e-2):
        raise SystemExit(f"our variants' losses differ by {spread:g}: {losses}")
    return {**result.to_dict(), "trainable": counts}


def generate_row(name: str, n: int, max_new: int, repeats: int, root: Path, reference: dict | None) -> dict:
    import soundfile as sf

    ours = ts.build(name, root, overrides=QFORMER_WIDTH).eval()
    compatible = ts.build(name, root, reference=True, overrides=QFORMER_WIDTH).eval()
    paths = sorted(speech_clips(n), key=lambda p: sf.info(p).frames)
    convs = [
        [
            {
                "role": "user",
                "content": "<|AUDIO|>\nDescribe the audio.",
                "audios": [{"audio": str(p), "text": "a short transcript"}],
            }
        ]
        for p in paths
    ]
    gen = {"max_new_tokens": max_new, "do_sample": False}
    variants = []
    worker = None
    if reference is not None:
        spec = {**reference_spec(name, ours), "kind": "generate", "conversations": convs, "max_new_tokens": max_new}
        worker = ReferenceWorker(reference["python"], reference["dir"], spec, root, f"generate-{name}")
        variants.append(Variant("reference", lambda: worker.call("generate")["tokens"], units=n))

    def tokens(model: Any):  # each answer's new tokens: both sides stop at end of sequence, so counts may differ
        return lambda: [d["num_tokens"] for d in model.generate(convs, generation=gen, return_details=True)]

    variants += [
        Variant("ours, reference_compatible", tokens(compatible), expect_equal=False, units=n),
        Variant("ours, default", tokens(ours), expect_equal=False, units=n),
    ]
    try:
        result = compare(
            f"generate, {name}, {n} conversations x {max_new} tokens at most",
            variants,
            baseline=variants[0].name,
            repeats=repeats,
            unit="conversations",
        ).to_dict()
    finally:
        if worker is not None:
            worker.close()
    for row, v in zip(result["rows"], variants):
        row["new_tokens"] = sum(v.output)
        row["tokens_per_s"] = row["new_tokens"] / row["median_s"]
    print("  new tokens (tokens/s): " + ", ".join(
        f"{r['variant']} {r['new_tokens']} ({r['tokens_per_s']:.1f})" for r in result["rows"]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--reference-dir", type=Path, default=None,
                        help="a checkout of kehanlu/DeSTA2.5-Audio (adds the reference column)")
    parser.add_argument("--reference-python", default=None,
                        help="the python of the reference's venv (default: REFERENCE_DIR/.venv/bin/python)")
    parser.add_argument("--no-memory", action="store_true", help="leave out the peak-memory row")
    for hidden in ("--peak-of", "--peak-config"):  # the peak-memory child's own flags
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    for hidden in ("--peak-batch", "--peak-clips"):
        parser.add_argument(hidden, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_of is not None:
        return peak_of(args.peak_of, args.peak_config, args.peak_batch, args.peak_clips)
    reference = None
    if args.reference_dir is not None:
        if not (args.reference_dir / "desta" / "models" / "modeling_desta25.py").is_file():
            sys.exit(f"--reference-dir {args.reference_dir}: no desta/models/modeling_desta25.py there; "
                     "pass a checkout of kehanlu/DeSTA2.5-Audio")
        python = args.reference_python or str(args.reference_dir / ".venv" / "bin" / "python")
        if not Path(python).is_file():
            sys.exit(f"--reference-python {python}: not found; pass the python of a venv where the reference "
                     "imports (see this script's docstring)")
        reference = {"dir": args.reference_dir.resolve(), "python": python}
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.tiny:
            if ts.missing_assets("demo"):
                sys.exit(
                    f"demo config needs {ts.missing_assets('demo')}: run python tools/prepare_assets.py "
                    "(or pass --tiny)"
                )
            rows.append(train_row("demo", 4, 16, args.repeats, root, reference))
        rows.append(train_row("tiny", 2, 4 if args.tiny else 16, args.repeats, root, reference))
        if args.tiny:
            rows.append(generate_row("tiny", 2, 4, args.repeats, root, reference))
        else:
            rows.append(generate_row("demo", 16, 64, args.repeats, root, reference))
        memory = None
        if not args.no_memory:
            memory = peak_memory_row("tiny" if args.tiny else "demo", 2 if args.tiny else 4, 4 if args.tiny else 16,
                                     root, reference)
    columns = COLUMNS if reference is not None else COLUMNS[1:]
    print("\n| workload | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for r in rows:
        cells = {
            x["variant"]: f"{x['ratio']:.2f}x ({x['min_s']:.2f}-{x['max_s']:.2f} s"
            + (f", {x['new_tokens']} new tokens)" if "new_tokens" in x else ")")
            for x in r["rows"]
        }
        print(f"| {r['title']} | " + " | ".join(cells.get(k, "-") for k in columns) + " |")
    if memory is not None:
        print(f"| {memory['title']} | " + " | ".join(
            f"{memory['peak_mib'][k]:.0f} MiB" if k in memory["peak_mib"] else "-" for k in columns) + " |")
    print(f"(ratio: {columns[0]} median / variant median, >1 is faster; in brackets the variant's min-max epoch "
          "or pass time; memory: each variant's own process)")
    write_json(args.json, {"rows": rows, "memory": memory})
    return 0


if __name__ == "__main__":
    sys.exit(main())
