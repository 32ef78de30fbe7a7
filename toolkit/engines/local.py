"""``--cmd local``: every task as a background process on this machine (the default)."""

from __future__ import annotations

import shlex
import subprocess
import time

from toolkit.engines.base import ENGINES, Engine, Task, TaskResult, describe_returncode


@ENGINES.register("local")
class LocalEngine(Engine):
    """Runs tasks as local processes, at most ``max_concurrent`` at once (null: all of them).

    Resource keys (per kind or under ``default``): ``max_concurrent``.
    """

    keys = ("max_concurrent",)

    def run(self, kind: str, name: str, tasks: list[Task]) -> list[TaskResult]:
        cap = self.settings(kind).get("max_concurrent") or len(tasks) or 1
        pending, running, results = list(tasks), [], {}
        while pending or running:
            while pending and len(running) < cap:
                task = pending.pop(0)
                task.log.parent.mkdir(parents=True, exist_ok=True)
                # One shell per task: its commands run in order and stop at the first failure. A lone task
                # also shows its output on the console, as a stage run in the foreground does.
                if len(tasks) == 1:
                    log = None
                    proc = subprocess.Popen(["bash", "-o", "pipefail", "-c",
                                             f"( {task.shell()} ) 2>&1 | tee {shlex.quote(str(task.log))}"])
                else:
                    log = open(task.log, "w", encoding="utf-8")
                    proc = subprocess.Popen(["bash", "-c", task.shell()], stdout=log, stderr=subprocess.STDOUT)
                running.append((task, proc, log))
            for entry in list(running):
                task, proc, log = entry
                code = proc.poll()
                if code is not None:
                    if log is not None:
                        log.close()
                    # bash reports a child killed by signal N as 128 + N
                    state = describe_returncode(-(code - 128) if code > 128 else code)
                    results[task.index] = TaskResult(task, code == 0, state)
                    running.remove(entry)
            time.sleep(0.2)
        return [results[t.index] for t in tasks]
