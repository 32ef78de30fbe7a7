"""``--cmd slurm``: sharded stages as one ``sbatch --array`` job, other stages as one batch job each.

The resource file (``conf/slurm.yaml``) maps each job kind to sbatch flags::

    default: {partition: null, time: "1-00:00:00", mem: 32G, cpus: 8, gpu: 0, max_concurrent: null, extra: []}
    selfgen: {gpu: 1}                 # each array task: --gres=gpu:1
    train: {gpu: 8, nodes: 2}         # --nodes=2 --ntasks-per-node=8 --gres=gpu:8, training under srun
                                      # (tasks_per_node: ranks per node when not one per GPU, e.g. CPU DDP)

``max_concurrent`` caps running array tasks (``--array=0-7%2``). Training runs under ``srun`` with one task
per GPU, so Lightning's SLURM launcher (``SLURMEnvironment``) sets ranks across nodes; the launcher passes
``train.num_nodes``/``train.devices`` to match.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from typing import Any

from toolkit.config import ConfigError
from toolkit.engines.base import ENGINES, Engine, Task, TaskResult

FLAG_OF = {"partition": "--partition", "time": "--time", "mem": "--mem", "cpus": "--cpus-per-task",
           "account": "--account", "qos": "--qos"}


def ranks_per_node(settings: dict[str, Any]) -> int:
    """Training ranks per node: ``tasks_per_node``, else one per GPU (one on CPU nodes)."""
    return int(settings.get("tasks_per_node") or max(int(settings.get("gpu") or 0), 1))


def _array_spec(indices: list[int], max_concurrent: int | None) -> str:
    spec = ",".join(str(i) for i in indices)
    return f"{spec}%{max_concurrent}" if max_concurrent else spec


def sbatch_command(kind: str, settings: dict[str, Any], name: str, tasks: list[Task], log_pattern: str) -> list[str]:
    """The sbatch command line for ``tasks`` (an array when there are several indices)."""
    cmd = ["sbatch", "--parsable", "--wait", f"--job-name={name}", f"--output={log_pattern}"]
    for key, flag in FLAG_OF.items():
        if settings.get(key) not in (None, ""):
            cmd.append(f"{flag}={settings[key]}")
    gpu = int(settings.get("gpu") or 0)
    if gpu:
        cmd.append(f"--gres=gpu:{gpu}")
    if kind == "train":
        cmd += [f"--nodes={int(settings.get('nodes') or 1)}", f"--ntasks-per-node={ranks_per_node(settings)}"]
    array = [t.index for t in tasks]
    if len(tasks) > 1 or kind in ("selfgen", "decode"):
        cmd.append(f"--array={_array_spec(array, settings.get('max_concurrent'))}")
    cmd += [str(x) for x in settings.get("extra") or []]
    return cmd


def wrap_script(tasks: list[Task]) -> str:
    """One batch script for all tasks: the array index picks the task's commands (``srun`` where marked)."""
    lines = []
    for t in tasks:
        parts = [("srun " if (t.ranks[j] if j < len(t.ranks) else False) else "") + shlex.join(c)
                 for j, c in enumerate(t.commands)]
        lines.append(f"  {t.index}) {' && '.join(parts)} ;;")
    return "case ${SLURM_ARRAY_TASK_ID:-%d} in\n%s\n  *) echo \"no task $SLURM_ARRAY_TASK_ID\"; exit 3 ;;\nesac" % (
        tasks[0].index, "\n".join(lines))


def job_states(job_id: str) -> dict[int | None, tuple[str, str]]:
    """``{array index: (JobState, ExitCode)}`` from ``scontrol`` (or ``sacct`` once scontrol forgot the job)."""
    out: dict[int | None, tuple[str, str]] = {}
    res = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        if "JobState" in fields:
            index = int(fields["ArrayTaskId"]) if fields.get("ArrayTaskId", "N/A").isdigit() else None
            out[index] = (fields["JobState"], fields.get("ExitCode", "?"))
    if not out and shutil.which("sacct"):
        res = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "--format=JobID,State,ExitCode"],
                             capture_output=True, text=True)
        for line in res.stdout.splitlines():
            jid, state, code = (line.split("|") + ["", "", ""])[:3]
            index = int(jid.split("_")[1]) if "_" in jid and jid.split("_")[1].isdigit() else None
            out[index] = (state.split()[0] if state else "UNKNOWN", code)
    return out


@ENGINES.register("slurm")
class SlurmEngine(Engine):
    """Submits through ``sbatch`` and waits (``--wait``). Resource keys: see the module docstring."""

    keys = ("partition", "time", "mem", "cpus", "gpu", "nodes", "tasks_per_node", "max_concurrent", "account", "qos",
            "extra")

    def train_overrides(self) -> list[str]:
        """Overrides that make the trainer's world match the allocation (Lightning checks devices x nodes)."""
        settings = self.settings("train")
        out = [f"train.num_nodes={int(settings.get('nodes') or 1)}", f"train.devices={ranks_per_node(settings)}"]
        return out + (["train.accelerator=gpu"] if int(settings.get("gpu") or 0) else [])

    def run(self, kind: str, name: str, tasks: list[Task]) -> list[TaskResult]:
        if shutil.which("sbatch") is None:
            raise ConfigError("--cmd slurm: 'sbatch' is not on PATH; run on a SLURM login node or use --cmd local")
        # One --output pattern for the whole array: %a is the index; the attempt number is in the file name.
        first = tasks[0]
        pattern = str(first.log).replace(f"shard{first.index}.", "shard%a.") if len(tasks) > 1 else str(first.log)
        for t in tasks:
            t.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = sbatch_command(kind, self.settings(kind), name, tasks, pattern)
        proc = subprocess.run(cmd + ["--wrap", wrap_script(tasks)], capture_output=True, text=True)
        job_id = proc.stdout.strip().split(";")[0].splitlines()[0] if proc.stdout.strip() else ""
        if not job_id:
            raise ConfigError(f"sbatch refused the job ({' '.join(cmd)}): {proc.stderr.strip()}; fix {self.source}")
        states = job_states(job_id)
        results = []
        for t in tasks:
            state, code = states.get(t.index, states.get(None, ("UNKNOWN", "?")))
            where = f"job {job_id}_{t.index}" if "--array" in " ".join(cmd) else f"job {job_id}"
            results.append(TaskResult(t, state == "COMPLETED", f"{state} ({where}, exit {code})"))
        return results
