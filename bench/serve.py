"""Server load test: concurrent OpenAI-client requests with batching against one-at-a-time, in one run.

    python bench/serve.py [--model EXPORT_DIR] [--clients 8] [--requests 20] [--max-batch-size 8]
        [--batch-wait-ms 20] [--max-new-tokens 32] [--asr] [--backend hf|vllm]

Starts the server twice on 127.0.0.1 (a free port) over the same loaded model: once with
``--max-batch-size 1`` and once with batching; each time ``clients`` threads send ``requests``
chat completions each (a real pocketsphinx clip as base64 wav + a question). Prints one JSON object
with requests/s, completion tokens/s, latency and the server's batch-size histogram per mode, and
exits non-zero if any request failed.

``--backend vllm`` starts ``python -m toolkit.bin.serve --backend vllm`` twice instead (vLLM's
server with ``--max-num-seqs 1``, then ``--max-batch-size``; fp32 on CPU), needs vLLM installed
(``bash tools/install.sh --vllm``), and adds about two minutes of engine start-up.

Without ``--model`` it builds the demo architecture (real Whisper tiny.en + SmolLM2-135M-Instruct
bf16, untrained Q-Former), as ``bench/decode.py`` does. Transcripts are sent with the clips so ASR
is not timed; ``--asr`` leaves them out and the export's transcriber runs in the server.
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path


def build_model(export: str | None):
    from toolkit.config import cache_dir
    from toolkit.models.lalm import LALM

    if export:
        return LALM.from_pretrained(export), export.rstrip("/").split("/")[-1]
    models = cache_dir() / "models"
    return LALM.from_config({
        "encoder": {"name": "whisper", "model_path": str(models / "whisper-tiny.en")},
        "adapter": {"name": "qformer", "num_layers": 2, "num_queries": 64, "intermediate_size": 1536},
        "llm": {"name": "hf_causal_lm", "model_path": str(models / "smollm2-135m-instruct"), "dtype": "bfloat16"},
        "transcriber": {"name": "given"},
        "lalm": {"system_prompt": "Focus on the audio clips and instructions."},
    }).eval(), "demo"


def requests_for(n: int, with_transcripts: bool) -> list[list[dict]]:
    paths = sorted(glob.glob("/usr/share/pocketsphinx/test/data/*/*.wav"))
    if not paths:
        sys.exit("no clips: apt-get install pocketsphinx-testdata")
    clips = [base64.b64encode(open(p, "rb").read()).decode() for p in paths]
    asks = ["What is said?", "Describe the speaker.", "Summarize the audio.", "What is the mood?"]
    out = []
    for i in range(n):
        audio = {"data": clips[i % len(clips)], "format": "wav"}
        if with_transcripts:
            audio["transcript"] = "a short transcript"
        out.append([{"role": "user", "content": [{"type": "text", "text": asks[i % len(asks)]}, {"type": "input_audio", "input_audio": audio}]}])
    return out


def load(url: str, name: str, messages: list[list[dict]], clients: int, per_client: int, max_new_tokens: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    latencies, tokens, failures = [], [], []
    lock = threading.Lock()

    def worker(c: int) -> None:
        for r in range(per_client):
            msg = messages[(c * per_client + r) % len(messages)]
            start = time.perf_counter()
            try:
                reply = client.chat.completions.create(model=name, messages=msg, max_tokens=max_new_tokens, temperature=0)
            except Exception as err:  # counted, reported, and the run fails
                with lock:
                    failures.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
                tokens.append(reply.usage.completion_tokens)
                done = len(latencies) + len(failures)
                if done % max(1, clients * per_client // 10) == 0:
                    print(f"  {done}/{clients * per_client} requests, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    t0 = start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    secs = time.perf_counter() - start
    return {"requests": clients * per_client, "failed": len(failures), "seconds": round(secs, 2),
            "requests_per_s": round(len(latencies) / secs, 3), "tokens_per_s": round(sum(tokens) / secs, 1),
            "completion_tokens": sum(tokens),
            "latency_s": {"mean": round(statistics.mean(latencies), 3) if latencies else None,
                          "p50": round(statistics.median(latencies), 3) if latencies else None,
                          "max": round(max(latencies), 3) if latencies else None},
            "first_failures": failures[:3]}


@contextmanager
def vllm_server(export: str, name: str, batch: int) -> Iterator[str]:
    """``toolkit.bin.serve --backend vllm`` on a free port; yields its URL once /health answers."""
    import socket
    import subprocess
    import tempfile
    import urllib.request

    from toolkit.serve.local import stop_process

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", prefix="bench-vllm-", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.bin.serve", "--backend", "vllm", "--model", export, "--port", str(port),
                             "--served-model-name", name, "--max-batch-size", str(batch), "--max-model-len", "2048"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                sys.exit(f"the vLLM server exited {proc.returncode}; its log: {log.name}")
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"the vLLM server did not start in 600 s; its log: {log.name}")
                time.sleep(1)
        yield url
    finally:
        stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="export dir (default: the demo architecture, untrained adapter)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=20.0)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--asr", action="store_true", help="send no transcripts: the server's transcriber runs")
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    args = parser.parse_args()

    import toolkit  # noqa: F401  (first: it sets OMP_WAIT_POLICY=PASSIVE before torch loads)
    import torch

    from toolkit.serve.app import create_app
    from toolkit.serve.backend import HFBackend
    from toolkit.serve.local import serve_in_thread

    torch.manual_seed(0)
    model, name = build_model(args.model)
    backend = HFBackend(model, name)
    messages = requests_for(args.clients * args.requests, with_transcripts=not args.asr)
    report = {"model": args.model or "demo (whisper-tiny.en + smollm2-135m bf16, untrained qformer)",
              "clients": args.clients, "requests_per_client": args.requests, "max_new_tokens": args.max_new_tokens,
              "torch_threads": torch.get_num_threads()}
    report["backend"] = args.backend
    if args.backend == "vllm":
        from toolkit.bin.serve import vllm_dtype

        report["served_dtype"] = vllm_dtype(dict(model.config))  # what toolkit.bin.serve passes vLLM
    export = args.model
    if args.backend == "vllm" and export is None:
        import tempfile

        export = str(model.save_pretrained(Path(tempfile.mkdtemp(prefix="bench-serve-")) / name))
    for label, batch in (("one_at_a_time", 1), ("batched", args.max_batch_size)):
        print(f"{label} (max batch size {batch}):", file=sys.stderr, flush=True)
        if args.backend == "vllm":
            with vllm_server(export, name, batch) as url:
                load(url, name, messages[:2], 1, 2, args.max_new_tokens)  # warm-up, not counted
                result = load(url, name, messages, args.clients, args.requests, args.max_new_tokens)
                result["max_batch_size"] = batch
            report[label] = result
            continue
        app = create_app(backend, max_batch_size=batch, batch_wait_ms=args.batch_wait_ms, max_audio_seconds=600)
        with serve_in_thread(app) as url:
            load(url, name, messages[:2], 1, 2, args.max_new_tokens)  # warm-up, not counted
            app.state.batcher.batch_sizes.clear()
            result = load(url, name, messages, args.clients, args.requests, args.max_new_tokens)
            result["max_batch_size"] = batch
            result["server_batches"] = app.state.batcher.stats()
        report[label] = result
    one, many = report["one_at_a_time"], report["batched"]
    report["speedup_requests_per_s"] = round(many["requests_per_s"] / one["requests_per_s"], 2) if one["requests_per_s"] else None
    report["speedup_tokens_per_s"] = round(many["tokens_per_s"] / one["tokens_per_s"], 2) if one["tokens_per_s"] else None
    print(json.dumps(report, indent=2))
    if one["failed"] or many["failed"]:
        sys.exit(f"{one['failed'] + many['failed']} requests failed")


if __name__ == "__main__":
    main()
