"""Run an ASGI app on 127.0.0.1 in a background thread (tests, benchmarks, notebooks), and stop server processes.

The socket is bound before the server starts (port 0 = a free port picked by the OS), so there is
no race between choosing a port and listening on it; leaving the context stops the server and
joins its thread within ``stop_timeout`` seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 60.0,
                    stop_timeout: float = 30.0) -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) of ``app`` served by uvicorn in a thread."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the server on {host}:{port} exited during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server on {host}:{port} did not start within {start_timeout:g} s")
            time.sleep(0.05)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(stop_timeout)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"the server on {host}:{port} did not stop within {stop_timeout:g} s")


def stop_process(proc: "subprocess.Popen", timeout: float = 60.0) -> None:
    """Stop a server process and, if it leads its own session (``start_new_session=True``), its children.

    vLLM's engine runs in child processes that outlive a terminated parent; signalling the whole
    group leaves no orphan holding memory. SIGTERM first, SIGKILL after ``timeout`` seconds.
    """
    import os
    import signal
    import subprocess

    try:
        group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        group = False

    def signal_all(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        except ProcessLookupError:
            pass

    signal_all(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_all(signal.SIGKILL)
        proc.wait()
    if group:
        signal_all(signal.SIGKILL)  # children still in the group after the leader left
