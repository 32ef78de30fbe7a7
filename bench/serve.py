"""Server load test: concurrent OpenAI-client requests with batching against one-at-a-time, interleaved.

    python bench/serve.py [--model EXPORT_DIR] [--clients 8] [--requests 20] [--max-batch-size 8]
        [--batch-wait-ms 20] [--max-new-tokens 32] [--asr] [--backend hf|vllm] [--repeats 5]
    python bench/serve.py --tiny     # tiny random-init model, 2 clients x 2 requests: the CI smoke run

Starts two servers on 127.0.0.1 (free ports) over the same loaded model, one with
``--max-batch-size 1`` and one with batching, and runs the load against them in turns (the
harness's interleaved rounds); each load is ``clients`` threads sending ``requests`` chat
completions each (a real pocketsphinx clip as base64 wav + a question). Prints the harness table
(requests/s with spreads, ratio to one-at-a-time, answers compared), then one JSON object with
tokens/s, latency and the server's batch-size histogram of the last load per mode, and exits
non-zero if any request failed.

``--backend vllm`` starts two ``python -m toolkit.bin.serve --backend vllm`` servers instead (vLLM's
server with ``--max-num-seqs 1`` and with ``--max-batch-size``, both up at once; fp32 on CPU), needs vLLM installed
(``bash tools/install.sh --vllm``), and adds about two minutes of engine start-up.

Without ``--model`` it builds the demo architecture (real Whisper tiny.en + SmolLM2-135M-Instruct
bf16, untrained Q-Former), as ``bench/decode.py`` does. Transcripts are sent with the clips so ASR
is not timed; ``--asr`` leaves them out and the export's transcriber runs in the server.
"""

from __future__ import annotations

import toolkit  # noqa: F401  (first: passive OpenMP waiting, set before torch loads)

import argparse
import base64
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path


def build_model(export: str | None, tiny: bool = False):
    from harness import bench_model

    from toolkit.models.lalm import LALM

    if export:
        return LALM.from_pretrained(export), export.rstrip("/").split("/")[-1]
    return bench_model(tiny), "tiny" if tiny else "demo"


def requests_for(n: int, with_transcripts: bool) -> list[list[dict]]:
    from harness import speech_clips

    paths = sorted(set(speech_clips(n)))
    clips = [base64.b64encode(open(p, "rb").read()).decode() for p in paths]
    asks = ["What is said?", "Describe the speaker.", "Summarize the audio.", "What is the mood?"]
    out = []
    for i in range(n):
        audio = {"data": clips[i % len(clips)], "format": "wav"}
        if with_transcripts:
            audio["transcript"] = "a short transcript"
        out.append(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": asks[i % len(asks)]},
                        {"type": "input_audio", "input_audio": audio},
                    ],
                }
            ]
        )
    return out


def load(url: str, name: str, messages: list[list[dict]], clients: int, per_client: int, max_new_tokens: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    latencies, tokens, failures = [], [], []
    texts: dict[int, str] = {}
    lock = threading.Lock()

    def worker(c: int) -> None:
        for r in range(per_client):
            index = c * per_client + r
            msg = messages[index % len(messages)]
            start = time.perf_counter()
            try:
                reply = client.chat.completions.create(
                    model=name, messages=msg, max_tokens=max_new_tokens, temperature=0
                )
            except Exception as err:  # counted, reported, and the run fails
                with lock:
                    failures.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
                tokens.append(reply.usage.completion_tokens)
                texts[index] = reply.choices[0].message.content
                done = len(latencies) + len(failures)
                if done % max(1, clients * per_client // 10) == 0:
                    print(
                        f"  {done}/{clients * per_client} requests, {time.perf_counter() - t0:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )

    t0 = start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    secs = time.perf_counter() - start
    return {
        "requests": clients * per_client,
        "failed": len(failures),
        "seconds": round(secs, 2),
        "requests_per_s": round(len(latencies) / secs, 3),
        "tokens_per_s": round(sum(tokens) / secs, 1),
        "completion_tokens": sum(tokens),
        "latency_s": {
            "mean": round(statistics.mean(latencies), 3) if latencies else None,
            "p50": round(statistics.median(latencies), 3) if latencies else None,
            "max": round(max(latencies), 3) if latencies else None,
        },
        "first_failures": failures[:3],
        "texts": [texts.get(i) for i in range(clients * per_client)],
    }


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
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolkit.bin.serve",
            "--backend",
            "vllm",
            "--model",
            export,
            "--port",
            str(port),
            "--served-model-name",
            name,
            "--max-batch-size",
            str(batch),
            "--max-model-len",
            "2048",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
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


def main(argv: list[str] | None = None) -> int:
    from harness import Variant, add_common_args, compare, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--model", default=None, help="export dir (default: the demo architecture, untrained adapter)")
    parser.add_argument("--clients", type=int, default=None, help="default 8; --tiny 2")
    parser.add_argument("--requests", type=int, default=None, help="requests per client (default 20; --tiny 2)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=20.0)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 32; --tiny 4")
    parser.add_argument("--asr", action="store_true", help="send no transcripts: the server's transcriber runs")
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    args = parser.parse_args(argv)
    clients = args.clients or (2 if args.tiny else 8)
    per_client = args.requests or (2 if args.tiny else 20)
    max_new = args.max_new_tokens or (4 if args.tiny else 32)

    import torch

    from toolkit.serve.app import create_app
    from toolkit.serve.backend import HFBackend
    from toolkit.serve.local import serve_in_thread

    torch.set_num_threads(1)
    model, name = build_model(args.model, args.tiny)
    messages = requests_for(clients * per_client, with_transcripts=not args.asr)
    report = {
        "model": args.model or f"{name} (untrained qformer)",
        "backend": args.backend,
        "clients": clients,
        "requests_per_client": per_client,
        "max_new_tokens": max_new,
        "torch_threads": torch.get_num_threads(),
    }
    if args.backend == "vllm":
        from toolkit.models.loading import vllm_dtype

        # what toolkit.bin.serve passes vLLM
        report["served_dtype"] = vllm_dtype("auto", (model.config.get("llm") or {}).get("dtype"))
    export = args.model
    if args.backend == "vllm" and export is None:
        import tempfile

        export = str(model.save_pretrained(Path(tempfile.mkdtemp(prefix="bench-serve-")) / name))
    modes = {"one at a time": 1, "batched": args.max_batch_size}
    last: dict[str, dict] = {}
    with ExitStack() as stack:
        urls, apps = {}, {}
        for label, batch in modes.items():
            print(f"starting the {label} server (max batch size {batch})", file=sys.stderr, flush=True)
            if args.backend == "vllm":
                urls[label] = stack.enter_context(vllm_server(export, name, batch))
            else:
                apps[label] = create_app(
                    HFBackend(model, name),
                    max_batch_size=batch,
                    batch_wait_ms=args.batch_wait_ms,
                    max_audio_seconds=600,
                )
                urls[label] = stack.enter_context(serve_in_thread(apps[label]))

        def run(label: str):
            def go() -> list:
                if label in apps:
                    apps[label].state.batcher.batch_sizes.clear()
                result = load(urls[label], name, messages, clients, per_client, max_new)
                result["max_batch_size"] = modes[label]
                if label in apps:
                    result["server_batches"] = apps[label].state.batcher.stats()
                last[label] = result
                return result["texts"]

            return go

        exact = args.backend == "hf" and model.llm.dtype == torch.float32
        n = clients * per_client
        variants = [
            Variant(label, run(label), expect_equal=exact or label == "one at a time", units=n) for label in modes
        ]
        result = compare(
            f"serve ({args.backend}): {clients} clients x {per_client} requests",
            variants,
            baseline="one at a time",
            repeats=args.repeats,
            unit="requests",
        )
    for label, res in last.items():
        report[label] = {k: v for k, v in res.items() if k != "texts"}
    one, many = report["one at a time"], report["batched"]
    report["speedup_tokens_per_s"] = (
        round(many["tokens_per_s"] / one["tokens_per_s"], 2) if one["tokens_per_s"] else None
    )
    report["harness"] = result.to_dict()
    print(json.dumps({k: v for k, v in report.items() if k != "harness"}, indent=2))
    write_json(args.json, report)
    failed = one["failed"] + many["failed"]
    if failed:
        sys.exit(f"{failed} requests failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
