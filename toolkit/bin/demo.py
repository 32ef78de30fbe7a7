"""A web demo of an exported model (Gradio): chat about uploaded or recorded audio.

    python -m toolkit.bin.demo --model EXPORT_DIR [--host 127.0.0.1 --port 7860] [--max-audio-seconds 600]

Open http://127.0.0.1:7860 in a browser. Shows the transcript the model was given for each clip
and a heatmap of the adapter's per-query layer weights.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m toolkit.bin.demo", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="export directory (config.yaml + model.safetensors)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-audio-seconds", type=float, default=600.0, help="longest accepted clip (0 = no limit)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer budget (default: the export's generation settings)")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not (Path(args.model) / "config.yaml").is_file():
        raise SystemExit(f"--model {args.model}: not an exported model (no config.yaml); run the export stage (./run.sh --stage 8) or pass its output_dir")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import gradio  # noqa: F401
    except ImportError as err:
        raise SystemExit("the demo needs gradio: pip install -e .[serve]") from err
    from toolkit.models.lalm import LALM
    from toolkit.serve.demo import build_demo

    model = LALM.from_pretrained(args.model, device=args.device)
    generation = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else None
    demo = build_demo(model, Path(args.model).resolve().name, max_audio_seconds=args.max_audio_seconds or None, generation=generation)
    demo.queue().launch(server_name=args.host, server_port=args.port, share=False)


if __name__ == "__main__":
    main(sys.argv[1:])
