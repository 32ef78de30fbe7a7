"""``--cmd ray``: every shard as a Ray task on an existing Ray cluster (or a local one), one engine per worker.

The resource file (``conf/ray.yaml``)::

    address: auto          # an existing cluster (ray start --head ...); null starts a local Ray instance
    default: {num_cpus: 1, num_gpus: 0, max_concurrent: null}
    selfgen: {num_gpus: 1}

Each task runs the stage's own command in a child process of its Ray worker, so every shard loads one
engine (its model) in its own process and frees it when done; the worker's exit state and log come back.
Ray is an optional extra: ``pip install -e .[ray]``.
"""

from __future__ import annotations

import os

from toolkit.config import ConfigError
from toolkit.engines.base import ENGINES, Engine, Task, TaskResult, describe_returncode


def _run_task(script: str, log: str, cwd: str, env: dict[str, str]) -> int:
    """Runs on a Ray worker: the task's commands in one shell, output to its log; returns the exit code."""
    import os
    import subprocess

    # Ray gives a GPU task its devices in the worker's CUDA_VISIBLE_DEVICES: the child must see the same ones.
    env = {**env, **{k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES",) if k in os.environ}}
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(["bash", "-c", script], stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    code = proc.returncode
    return -(code - 128) if code > 128 else code


@ENGINES.register("ray")
class RayEngine(Engine):
    """Resource keys: ``num_cpus``, ``num_gpus``, ``max_concurrent``; top-level ``address``."""

    keys = ("num_cpus", "num_gpus", "max_concurrent")

    def extra_sections(self) -> tuple[str, ...]:
        return ("address",)

    def run(self, kind: str, name: str, tasks: list[Task]) -> list[TaskResult]:
        try:
            import ray
        except ImportError as err:
            raise ConfigError(f"--cmd ray needs Ray: pip install -e '.[ray]' ({err})") from None
        if not ray.is_initialized():
            address = self.resources.get("address", "auto")
            try:
                ray.init(address=address, log_to_driver=False) if address else ray.init(log_to_driver=False)
            except ConnectionError:
                if address != "auto":
                    raise ConfigError(f"{self.source}: no Ray cluster at address {address}; start one "
                                      f"(ray start --head) or set address: null for a local instance") from None
                ray.init(log_to_driver=False)  # no cluster running: a local instance for this run
        settings = self.settings(kind)
        remote = ray.remote(num_cpus=settings.get("num_cpus", 1), num_gpus=settings.get("num_gpus", 0),
                            max_retries=0)(_run_task)
        cap = settings.get("max_concurrent") or len(tasks)
        env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES",)}
        pending, running, results = list(tasks), {}, {}
        while pending or running:
            while pending and len(running) < cap:
                task = pending.pop(0)
                task.log.parent.mkdir(parents=True, exist_ok=True)
                running[remote.remote(task.shell(), str(task.log.resolve()), os.getcwd(), env)] = task
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                task = running.pop(ref)
                try:
                    code = ray.get(ref)
                    results[task.index] = TaskResult(task, code == 0, describe_returncode(code))
                except Exception as err:  # the worker died or the task was cancelled: Ray says which
                    results[task.index] = TaskResult(task, False, f"ray: {type(err).__name__}: {str(err)[:200]}")
        return [results[t.index] for t in tasks]
