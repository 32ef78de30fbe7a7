"""The reference implementation's side of ``bench/reference.py``, run in the reference's own venv.

    <reference venv>/bin/python bench/reference_worker.py SPEC.json

Not imported by the toolkit and free of it: it runs where ``transformers`` is 4.49-4.57 and
``desta`` (a checkout of kehanlu/DeSTA2.5-Audio, put on ``sys.path`` from the spec) imports, and
it calls the reference's own classes unmodified: ``DeSTA25Config`` / ``DeSTA25AudioModel`` for
the model, ``BaseAudioTextDataset`` and its collate function for the batches.  Only the
environment is arranged around them:

- the reference picks its tapped Whisper layers by the exact hub id (``openai/whisper-tiny``),
  so the worker runs in a scratch directory where that relative path links to the local encoder;
- batches are collated once before timing, as data-loader workers would hand them over (the
  reference decodes and featurises audio in its collate, on every step);
- the epoch runs with dropout off and AdamW at lr 0, as ``bench/train_step.py`` does on our side,
  so the arithmetic per step is the training step's and the weights stay put.

Protocol (one JSON object per line): the worker prints ``{"ready": ...}`` once built, then
answers every ``epoch`` line on stdin with ``{"loss", "targets", "samples", "seconds", "peak_mib"}``
(a ``train`` spec; ``peak_mib``: resident-memory peak during that epoch) or every ``generate`` line
with ``{"texts", "tokens", "seconds"}`` (a ``generate``
spec: the reference's own ``generate()``, greedy), and stops at ``quit`` or end of input.  Errors go to stderr and end the process with status 1.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def epoch_peak_reset() -> None:
    """Start a new high-water mark of this process's resident memory (Linux; elsewhere a no-op)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mib() -> float:
    """Resident-memory high-water mark since the last reset (Linux), else the process's lifetime peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(spec: dict, scratch: Path):
    sys.path.insert(0, spec["reference_dir"])
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoFeatureExtractor, AutoTokenizer, PreTrainedTokenizerFast

    from desta.models.modeling_desta25 import DeSTA25AudioModel, DeSTA25Config
    from desta.trainer.data.simple_dataset import BaseAudioTextDataset

    torch.set_num_threads(int(spec.get("threads", 1)))
    hub_id = spec["encoder_hub_id"]
    (scratch / hub_id).parent.mkdir(parents=True, exist_ok=True)
    (scratch / hub_id).symlink_to(Path(spec["encoder_dir"]).resolve())
    os.chdir(scratch)

    torch.manual_seed(0)
    config = DeSTA25Config(
        llm_model_id=str(Path(spec["llm_dir"]).resolve()),
        encoder_model_id=hub_id,
        connector_mode="qformer_1",
        qformer_num_hidden_layers=int(spec["qformer_layers"]),
        prompt_size=int(spec["prompt_size"]),
        audio_locator="<|AUDIO|>",
        placeholder_token=spec["placeholder_token"],
    )
    model = DeSTA25AudioModel(config)
    if spec["kind"] == "train":  # as the reference's Lightning module does before training
        del model.perception.whisper.model.decoder
        del model.perception.whisper.proj_out

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.llm_model_id)
    except ValueError:  # a folder saved by transformers 5 names its tokenizer class "TokenizersBackend"
        tokenizer = PreTrainedTokenizerFast.from_pretrained(config.llm_model_id)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.pad_token_id = tokenizer.eos_token_id
    tokenizer.padding_side = "left"
    tokenizer.add_tokens([config.audio_locator])
    processor = AutoFeatureExtractor.from_pretrained(hub_id)
    if spec["kind"] == "generate":
        from silero_vad import get_speech_timestamps, load_silero_vad

        # what DeSTA25AudioModel._setup_generation sets, with silero VAD from its PyPI package instead of
        # torch.hub (no network) and the tokenizer loaded as above; the feature extractor serves the
        # processor's one use when every transcript is given
        model.tokenizer, model.processor = tokenizer, processor
        model.vad_model, model.get_speech_timestamps = load_silero_vad(), get_speech_timestamps
        model.eval()
        return model, spec["conversations"]

    cfg = OmegaConf.create(
        {
            "model": {
                "audio_locator": config.audio_locator,
                "placeholder_token": config.placeholder_token,
                "connector": {"prompt_size": config.prompt_size},
            }
        }
    )
    data_cfg = OmegaConf.create(
        {
            "data_root": str(Path(spec["audio_root"]).resolve()),
            "manifest_filepaths": [str(Path(spec["rows"]).resolve())],
            "max_seq_length": int(spec["max_seq_length"]),
        }
    )
    dataset = BaseAudioTextDataset(cfg, data_cfg, tokenizer, processor)
    size = int(spec["batch_size"])
    batches = [
        dataset.collate_fn([dataset[i] for i in range(start, start + size)])
        for start in range(0, len(dataset) - size + 1, size)  # drop_last, as its train loader does
    ]
    return model, batches


def epoch(model, batches, optimizer) -> dict:
    model.eval()  # dropout off, autograd on (see the module docstring)
    total, targets = 0.0, 0
    epoch_peak_reset()
    start = time.perf_counter()
    for batch in batches:
        out = model(**{k: v for k, v in batch.items() if k != "metadata"})
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(out.loss.detach()) * n
        targets += n
    seconds = time.perf_counter() - start
    samples = sum(len(b["metadata"]) for b in batches)
    return {"loss": total / max(1, targets), "targets": targets, "samples": samples, "seconds": seconds,
            "peak_mib": peak_mib()}


def generate(model, conversations, max_new_tokens: int) -> dict:
    import torch

    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(conversations, do_sample=False, max_new_tokens=max_new_tokens)
    seconds = time.perf_counter() - start
    # new tokens per answer, up to its first end of sequence (pad is eos here), as ours counts them
    stop = {model.tokenizer.eos_token_id, model.tokenizer.pad_token_id}
    tokens = [next((i for i, t in enumerate(ids) if t in stop), len(ids)) for ids in out.generated_ids]
    return {"texts": out.text, "tokens": tokens, "seconds": seconds}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    scratch = Path(tempfile.mkdtemp(prefix="desta-reference-"))
    try:
        return serve(spec, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def serve(spec: dict, scratch: Path) -> int:
    model, work = build(spec, scratch)  # work: collated batches (train) or conversations (generate)
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=0.0, weight_decay=0.01)
    counts = {"trainable": sum(p.numel() for p in trainable), "total": sum(p.numel() for p in model.parameters())}
    print(json.dumps({"ready": True, "items": len(work), "parameters": counts}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command == "epoch" and spec["kind"] == "train":
            print(json.dumps(epoch(model, work, optimizer)), flush=True)
        elif command == "generate" and spec["kind"] == "generate":
            print(json.dumps(generate(model, work, int(spec["max_new_tokens"]))), flush=True)
        else:
            print(f"unknown command {command!r} for a {spec['kind']} worker", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
