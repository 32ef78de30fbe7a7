"""Turn the official DeSTA2.5-Audio release into an export directory of this toolkit.

    huggingface-cli download DeSTA-ntu/DeSTA2.5-Audio-Llama-3.1-8B --local-dir /models/DeSTA2.5-Audio-Llama-3.1-8B
    python -m toolkit.bin.import_official --release /models/DeSTA2.5-Audio-Llama-3.1-8B --out exp/desta25_official \\
        encoder.model_path=/models/whisper-large-v3 transcriber.model_path=/models/whisper-large-v3 \\
        llm.model_path=/models/Llama-3.1-8B-Instruct

``--release`` takes the folder as ``huggingface-cli download`` leaves it (with ``--local-dir``, or the
hub-cache ``models--DeSTA-ntu--...`` folder without it), or the ``model.safetensors`` file itself.
The release's ``config.json`` fixes the Q-Former depth, the query count and the encoder's taps; its
``model.safetensors`` holds only the trained connector (``perception.connector.*``), whose keys are
mapped onto our ``qformer`` adapter (toolkit/models/official.py) and checked, name and shape, against
the adapter the config builds on the meta device (no Whisper or Llama weights are needed here).
What was mapped is printed. The output loads with ``LALM.from_pretrained(out, device=...)``, the
decode stage and ``egs/eval/desta25`` on a CPU or a GPU machine alike.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "official" / "desta25_llama3_1_8b.yaml"
log = logging.getLogger("toolkit.import_official")


def key_group(key: str) -> str:
    """``adapter.qformer.layer.3.attention.self.query.weight`` -> ``adapter.qformer.layer.*``, for the summary."""
    parts = key.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i] + ["*"])
    return ".".join(parts[:-1]) or key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", "--checkpoint", dest="release", required=True,
                        help="the downloaded release folder (huggingface-cli download layout) or its model.safetensors")
    parser.add_argument("--out", required=True, help="export directory to write")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="model config the checkpoint belongs to")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (model paths, generation settings)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from safetensors.torch import load_file, save_file

    from toolkit.config import load_config, save_resolved, to_container
    from toolkit.models.adapters import ADAPTERS
    from toolkit.models.adapters.base import adapter_runtime
    from toolkit.models.encoders import ENCODERS
    from toolkit.models.lalm import CONFIG_FILE, COMPONENTS, WEIGHTS_FILE, check_model_config
    from toolkit.models.loading import skip_weights
    from toolkit.models.official import (
        find_release, official_adapter_config, official_adapter_state_dict, release_overrides,
    )

    release = find_release(args.release)
    lines = [f"release weights: {release.weights}"]
    mapped = release_overrides(release.config, str(release.weights.parent / "config.json"))
    # The release's own description wins over the YAML's defaults; the user's key=value still wins over both.
    user_keys = {o.split("=", 1)[0] for o in args.overrides}
    from_release = [f"{k}={v}".replace(" ", "") for k, v, _ in mapped if k not in user_keys]
    cfg = to_container(load_config(args.config, from_release + list(args.overrides)))
    problems = check_model_config(cfg)
    if problems:
        raise SystemExit("invalid config:\n  " + "\n  ".join(problems))
    for key, value, source in mapped:
        note = "  (overridden on the command line)" if key in user_keys else ""
        lines.append(f"config.json {source} -> {key}: {value}{note}")
    if release.config:
        for field in ("llm_model_id", "encoder_model_id"):
            if field in release.config:
                slot = "llm" if field.startswith("llm") else "encoder"
                lines.append(f"config.json {field}={release.config[field]} -> {slot}.model_path: "
                    f"{cfg[slot].get('model_path')}")
    else:
        lines.append("no config.json beside the weights: adapter sizes come from the weights' shapes and the config")

    official = load_file(str(release.weights), device="cpu")
    implied = official_adapter_config(official)
    # Build the encoder (its head count is the Q-Former's default) and the adapter on meta, with the
    # sizes the checkpoint implies, to check names and shapes without any weights.
    encoder_node = dict(cfg["encoder"])
    given = encoder_node.get("model_path")
    local = bool(given) and (Path(str(given)).expanduser() / "config.json").is_file()
    if local and "preset" in encoder_node:
        encoder_node["preset"] = None  # the encoder actually given wins over the packaged architecture
    with skip_weights():
        encoder = ENCODERS.build(encoder_node, "encoder")
        runtime = {**adapter_runtime(cfg["adapter"], encoder, implied["output_size"]),
                   "input_size": implied["hidden_size"], "num_inputs": implied["num_inputs"]}
        adapter = ADAPTERS.build(cfg["adapter"], "adapter", **runtime)
    expected = {k: v.shape for k, v in adapter.state_dict().items()}
    state = official_adapter_state_dict(official, expected_keys=expected)
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs adapter {tuple(expected[k[len('adapter.'):]])}"
             for k, v in state.items() if tuple(v.shape) != tuple(expected[k[len("adapter."):]])]
    if wrong:
        raise SystemExit("the checkpoint's shapes do not match the configured adapter:\n  " + "\n  ".join(wrong[:10])
                         + f"\n  checkpoint implies {implied}; fix adapter.* in {args.config}")
    groups = Counter(key_group(k) for k in state)
    lines.append(f"model.safetensors: {len(state)} tensors perception.connector.* -> adapter.*, "
                 f"{sum(v.numel() for v in state.values()):,} parameters")
    for group, n in sorted(groups.items()):
        lines.append(f"  {group.replace('adapter.', 'perception.connector.', 1)} -> {group}: {n} tensors")
    heads = getattr(adapter, "num_heads", None)
    lines.append(f"adapter: {implied['num_layers']} layers, {implied['num_queries']} queries x "
        f"{implied['num_inputs']} taps, "
                 f"width {implied['hidden_size']}, {heads} heads (the encoder's {encoder.num_heads}), "
                     f"LLM width {implied['output_size']}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / WEIGHTS_FILE),
              metadata={"format": "pt", "source": str(release.weights)})
    model_cfg = {k: cfg[k] for k in (*COMPONENTS, "lalm", "generation") if k in cfg}
    if model_cfg["adapter"].get("num_heads") is None and heads is not None:
        model_cfg["adapter"] = {**model_cfg["adapter"], "num_heads": int(heads)}  # invisible in shapes: write it down
    save_resolved(model_cfg, out, CONFIG_FILE)
    lines.append(f"wrote {out / WEIGHTS_FILE} and {out / CONFIG_FILE}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
