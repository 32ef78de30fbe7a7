"""Stage 8: export a trained model: trainable weights (safetensors) + resolved config + a model card.

    python -m toolkit.bin.export --config conf/desta25.yaml [key=value ...]

The export directory loads with ``LALM.from_pretrained(dir)``, ``transformers.AutoModel.from_pretrained(dir)``
(after ``import toolkit``), the decode stage and vLLM; the frozen encoder and LLM are referenced by the
paths in its ``config.yaml``, not copied. Its ``README.md`` is a model card (components and where their
weights came from, training rows per source, the run's RESULTS.md, the exact config, how to use it).
The export is reloaded once and compared weight for weight before the done marker (``<output_dir>/.done``)
is written; while it exists the stage is skipped (delete it, or pass ``--force``, to export again);
``export.push_to_hub=org/name`` then uploads the folder with ``huggingface_hub``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.config import build_section, parse_cli

log = logging.getLogger("toolkit.export")

@dataclass
class ExportConfig:
    """The ``export:`` section.

    Args:
        model_dir: the trained model (written by the training stage).
        output_dir: where the export goes.
        results: the run's ``RESULTS.md``, copied into the model card (null: ``<output_dir>/../RESULTS.md``,
            where every recipe's scoring stage writes it; a missing file is said so in the card).
        push_to_hub: a Hugging Face repo id (``org/name``) to upload the export to; null: no upload.
        hub_private: create that repo as private.
    """

    model_dir: str
    output_dir: str
    results: str | None = None
    push_to_hub: str | None = None
    hub_private: bool = False


def training_data_counts(model_info: dict[str, Any]) -> dict[str, int]:
    """Training rows per source: as the training stage recorded them, else counted by ``dataset`` in its jsonl files."""
    training = model_info.get("training") or {}
    if training.get("data_rows"):
        return {str(k): int(v) for k, v in training["data_rows"].items()}
    spec = ((training.get("train") or {}).get("data") or {}).get("train_jsonl")
    if not spec:
        return {}
    from collections import Counter

    from toolkit.jsonl import iter_jsonl, jsonl_files

    try:
        files = jsonl_files(spec, "train.data.train_jsonl")
    except Exception:  # the rows moved since training: the card says the counts are unknown
        return {}
    return dict(sorted(Counter(str(row.get("dataset", "?")) for f in files for row in iter_jsonl(f)).items()))


def weights_source(part: str, node: dict[str, Any], adapter_source: str) -> str:
    """Where a part's weights come from, as a reader needs it to rebuild the model."""
    if part == "adapter":
        return adapter_source
    path = node.get("model_path")
    frozen = node.get("frozen", True)
    lora = " + LoRA trained here (in model.safetensors)" if node.get("lora") else ""
    state = "frozen" if frozen else "fine-tuned here (in model.safetensors)"
    return f"`{path}` ({state}{lora})" if path else "none (no weights)"


def model_card(out: Path, model_config: dict[str, Any], counts: dict[str, dict[str, int]], model_info: dict[str, Any],
               adapter_source: str, results_md: str | None, config_yaml: str, repo_id: str | None) -> str:
    """The export's README.md: its parts and where their weights came from, training data, scores, usage."""
    name = repo_id or out.name
    lines = [f"# {name}", "", "A Large Audio Language Model built with desta-toolkit (DeSTA2.5-Audio's self-generated "
             "cross-modal alignment): a speech encoder feeds a Q-Former adapter whose audio vectors, followed by the "
             "clip's transcript, are spliced into an LLM.", "", "## Components and weights", "",
             "| part | component | weights from | parameters (trainable / total) |", "|---|---|---|---:|"]
    for part in ("encoder", "adapter", "llm", "transcriber"):
        node = dict(model_config.get(part) or {})
        c = counts.get(part)
        params = f"{c['trainable']:,} / {c['total']:,}" if c else "-"
        lines.append(f"| {part} | `{node.get('name')}` | {weights_source(part, node, adapter_source)} | {params} |")
    total = counts["all"]
    lines += ["", f"Trainable parameters: {total['trainable']:,} of {total['total']:,}. "
        f"`model.safetensors` holds only the "
              "trained weights; the frozen parts are read from the paths above (on another machine, download them and "
              "pass `llm.model_path=...`-style overrides, or edit `config.yaml`).", ""]
    training = model_info.get("training") or {}
    lines += ["## Training data", ""]
    data = training_data_counts(model_info)
    if data:
        lines += ["| source | rows |", "|---|---:|"] + [f"| {k} | {v:,} |" for k, v in data.items()]
        lines += [f"| **total** | {sum(data.values()):,} |", ""]
    else:
        lines += ["Not recorded (this export was not made from a training run of this toolkit, or its rows moved).", ""]
    if training.get("global_step") is not None:
        settings = training.get("train") or {}
        lines += [f"Trained for {training['global_step']} optimizer steps (lr {settings.get('lr')}, batch "
                  f"{settings.get('batch_size')} per device, seed {settings.get('seed')}).", ""]
    lines += ["## Results", ""]
    if results_md:
        body = results_md.split("\n")
        lines += [line.replace("# Results", "### Results", 1) if line.startswith("# ") else
                  ("#" + line if line.startswith("## ") else line) for line in body] + [""]
    else:
        lines += ["Not scored yet (no RESULTS.md beside the export).", ""]
    lines += ["## Use", "", "With transformers (`import toolkit` registers the architecture; no "
        "`trust_remote_code`):", "",
              "```python", "import toolkit  # noqa: F401", "from transformers import AutoModel", "",
              (f'model = AutoModel.from_pretrained("DIR", device="cpu")   # huggingface-cli download {repo_id} '
               '--local-dir DIR' if repo_id else
               f'model = AutoModel.from_pretrained("{out}", device="cpu")   # or device="cuda"'),
              'print(model.generate([{"role": "user", "content": "<|AUDIO|>\\nWhat is said?",'
              ' "audios": [{"audio": "clip.wav"}]}]))',
              "```", "", "With the toolkit itself:", "", "```python", "from toolkit import LALM",
              f'model = LALM.from_pretrained("{out}")', "```", "", "Serve (OpenAI-compatible API) and "
                  "the web demo:", "", "```bash",
              f"python -m toolkit.bin.serve --model {out} --port 8000                  # PyTorch backend",
              f"python -m toolkit.bin.serve --backend vllm --model {out} --port 8000   # inside vLLM "
                  f"(bash tools/install.sh --vllm)",
              f"python -m toolkit.bin.demo --model {out} --port 7860", "```", "",
              "## Config", "", "`config.yaml`, exactly as the model was built (`config.json` carries the "
                  "same under `desta`):", "",
              "```yaml", config_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


def adapter_provenance(model_info: dict[str, Any], model_dir: str) -> str:
    """Trained here (steps) or imported (the source named in the weights' metadata)."""
    from safetensors import safe_open

    with safe_open(str(Path(model_dir) / "model.safetensors"), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("source"):
        return f"imported from `{meta['source']}` (toolkit.bin.import_official)"
    steps = (model_info.get("training") or {}).get("global_step")
    return f"trained by desta-toolkit ({steps} steps) in `{model_dir}`" if steps is not None else f"`{model_dir}`"


def push_to_hub(out: Path, repo_id: str, private: bool) -> str:
    """Upload the export folder to ``repo_id`` through ``huggingface_hub``; returns the commit URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError as err:
        raise ImportError("export.push_to_hub needs huggingface_hub: pip install huggingface_hub") from err
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(folder_path=str(out), repo_id=repo_id, repo_type="model",
                             commit_message="Upload desta-toolkit export", ignore_patterns=[".done"])
    return str(getattr(info, "commit_url", info))


def main(argv: list[str] | None = None) -> None:
    args, cfg = parse_cli(argv, __doc__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    section = build_section(cfg.export, ExportConfig, "export")
    from toolkit.markers import already_done

    done = Path(section.output_dir) / ".done"
    if already_done("Stage 8: export", [done], args.force):
        return
    done.unlink(missing_ok=True)
    import torch

    from toolkit.models.lalm import LALM

    model = LALM.from_pretrained(section.model_dir)
    out = Path(section.output_dir)
    model.save_pretrained(out, extra={"exported_from": str(Path(section.model_dir).resolve())})
    # Check what was written against the model (the frozen encoder/LLM are referenced, not copied, so
    # comparing the weights file is enough and needs no second model in memory).
    from safetensors.torch import load_file

    from toolkit.config import load_config
    from toolkit.models.lalm import check_model_config

    if check_model_config(load_config(out / "config.yaml")):
        raise RuntimeError(f"export check failed: {out / 'config.yaml'} does not validate")
    a, b = model.trainable_state_dict(), load_file(str(out / "model.safetensors"))
    bad = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
    if bad or set(a) != set(b):
        raise RuntimeError(f"export check failed: {len(bad)} tensors differ after reload (first: {bad[:3]}); the export in {out} is not trustworthy")
    from toolkit.models.hf_auto import write_config_json

    write_config_json(out)  # config.json: what transformers' AutoModel reads (and vLLM, below)
    try:  # the LLM's tokenizer files, chat template, generation defaults: the export then also loads in vLLM
        from toolkit.serve.vllm_plugin.prepare import prepare_vllm_dir

        prepare_vllm_dir(out)
    except Exception as err:  # the PyTorch export is complete either way; say why vLLM cannot load it
        log.warning("export is not vLLM-ready (%s); LALM.from_pretrained, AutoModel and the hf server "
            "still load it", err)
    info = json.loads((out / "model_info.json").read_text())
    trained_info = Path(section.model_dir) / "model_info.json"
    if trained_info.is_file():  # the training summary (steps, data) lives with the trained model
        info = {**json.loads(trained_info.read_text()), **info}
        (out / "model_info.json").write_text(json.dumps(info, indent=2))
    results = Path(section.results) if section.results else out.parent / "RESULTS.md"
    card = model_card(out, model.config, model.parameter_counts(), info, adapter_provenance(info, section.model_dir),
                      results.read_text() if results.is_file() else None, (out / "config.yaml").read_text(),
                      section.push_to_hub)
    (out / "README.md").write_text(card)
    log.info("exported %s -> %s (%d trainable tensors, written file verified)", section.model_dir, out, len(a))
    if section.push_to_hub:
        log.warning("pushing %s to %s: the frozen encoder/LLM are referenced by path, not uploaded (the card says so)",
                    out, section.push_to_hub)
        log.info("uploaded: %s", push_to_hub(out, section.push_to_hub, section.hub_private))
    done.touch()


if __name__ == "__main__":
    main()
