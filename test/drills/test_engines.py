"""Drills for the engines (toolkit/engines/): sbatch flags from conf/slurm.yaml, failed tasks reported with their
log and exit state, one log per attempt, and real SLURM / Ray runs where those exist."""

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from toolkit.config import ConfigError
from toolkit.engines import Task, load_engine
from toolkit.engines.base import next_attempt
from toolkit.engines.slurm import sbatch_command, wrap_script

ROOT = Path(__file__).resolve().parents[2]


def shell_task(index: int, script: str, log_dir: Path, name: str = "stage4") -> Task:
    attempt = next_attempt(log_dir, name)
    return Task(index, [["bash", "-c", script]], log_dir / f"{name}.shard{index}.attempt{attempt}.log")


def test_sbatch_flags_come_from_conf_slurm_yaml(tmp_path):
    conf = tmp_path / "slurm.yaml"
    conf.write_text(yaml.safe_dump({
        "default": {"partition": "big", "time": "04:00:00", "mem": "64G", "cpus": 8, "gpu": 0, "max_concurrent": None},
        "selfgen": {"gpu": 1, "max_concurrent": 2, "extra": ["--exclusive"]},
        "train": {"gpu": 4, "nodes": 2}}))
    engine = load_engine("slurm", conf)
    tasks = [Task(i, [["python", "-m", "toolkit.bin.selfgen", "--shard", str(i)]],
                  tmp_path / f"s.shard{i}.attempt1.log") for i in (1, 3, 4)]
    cmd = sbatch_command("selfgen", engine.settings("selfgen"), "stage4", tasks, "logs/stage4.shard%a.attempt1.log")
    assert cmd[:3] == ["sbatch", "--parsable", "--wait"]
    for flag in ("--partition=big", "--time=04:00:00", "--mem=64G", "--cpus-per-task=8", "--gres=gpu:1",
                 "--array=1,3,4%2", "--exclusive", "--output=logs/stage4.shard%a.attempt1.log", "--job-name=stage4"):
        assert flag in cmd, (flag, cmd)
    decode = sbatch_command("decode", engine.settings("decode"), "stage6", tasks[:1], "x.log")
    assert "--array=1" in decode and not any(c.startswith("--gres") for c in decode)  # gpu 0 by default
    train = sbatch_command("train", engine.settings("train"), "stage5", [tasks[0]], "t.log")
    assert {"--gres=gpu:4", "--nodes=2", "--ntasks-per-node=4"} <= set(train) and not any("--array" in c for c in train)
    assert engine.train_overrides() == ["train.num_nodes=2", "train.devices=4", "train.accelerator=gpu"]
    # the array task picks its own command; marked commands run under srun (Lightning's SLURM launcher)
    script = wrap_script([Task(0, [["a"], ["b", "x y"]], tmp_path / "l", ranks=[False, True])])
    assert "0) a && srun b 'x y' ;;" in script
    # the shipped files are valid for their engines
    shipped = [*(ROOT / "recipes" / "conf").glob("*.yaml"), *(ROOT / "egs").glob("*/*/conf/*.yaml")]
    engine_files = [p for p in shipped if p.stem in ("local", "slurm", "ray")]
    assert len(engine_files) >= 4
    for path in engine_files:
        load_engine(path.stem, path)


def test_a_misspelled_resource_is_refused_naming_the_file(tmp_path):
    conf = tmp_path / "slurm.yaml"
    conf.write_text(yaml.safe_dump({"selfgen": {"gpus": 1}, "trian": {}}))
    with pytest.raises(ConfigError) as err:
        load_engine("slurm", conf)
    assert "selfgen.gpus is not a setting" in str(err.value) and "'trian' is not a job kind" in str(err.value)
    with pytest.raises(ConfigError, match="unknown engine"):
        load_engine("pbs")


def test_local_failures_carry_log_and_exit_state_and_logs_are_never_overwritten(tmp_path):
    engine = load_engine("local")
    logs = tmp_path / "logs"
    first = [shell_task(0, "echo fine", logs), shell_task(1, "echo broken; exit 3", logs),
             shell_task(2, "kill -TERM $$", logs)]
    results = engine.run("selfgen", "stage4", first)
    assert [r.ok for r in results] == [True, False, False]
    assert results[1].state == "exit 3" and results[2].state == "killed by SIGTERM"
    assert results[1].task.log.read_text() == "broken\n"
    again = shell_task(1, "echo second", logs)
    assert again.log.name == "stage4.shard1.attempt2.log"
    engine.run("selfgen", "stage4", [again])
    assert results[1].task.log.read_text() == "broken\n" and again.log.read_text() == "second\n"


def slurm_running() -> bool:
    if shutil.which("sbatch") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.slurm
@pytest.mark.skipif(not slurm_running(), reason="needs sbatch and a running SLURM controller")
def test_real_slurm_array_reports_a_cancelled_task_with_its_log(tmp_path):
    engine = load_engine("slurm", ROOT / "egs" / "mini" / "desta25" / "conf" / "slurm.yaml")
    logs = tmp_path / "logs"
    tasks = [shell_task(0, "echo done0", logs), shell_task(1, "echo started1; sleep 120", logs)]

    def cancel_task_1():  # like a user's scancel (or a preemption) of one array task
        for _ in range(120):
            out = subprocess.run(["squeue", "-h", "-n", "drill_cancel", "-o", "%i %T"], capture_output=True, text=True)
            running = [line.split()[0] for line in out.stdout.splitlines() if line.endswith("RUNNING")]
            if any(j.endswith("_1") for j in running) and tasks[1].log.exists():
                subprocess.run(["scancel", next(j for j in running if j.endswith("_1"))])
                return
            time.sleep(0.5)

    thread = threading.Thread(target=cancel_task_1)
    thread.start()
    results = engine.run("selfgen", "drill_cancel", tasks)
    thread.join()
    assert results[0].ok and "COMPLETED" in results[0].state
    assert not results[1].ok and "CANCELLED" in results[1].state, results[1].state
    assert results[1].task.log.name == "stage4.shard1.attempt1.log" and "started1" in results[1].task.log.read_text()
    retry = shell_task(1, "echo done1", logs)
    assert engine.run("selfgen", "drill_cancel", [retry])[0].ok
    assert retry.log.name == "stage4.shard1.attempt2.log" and "started1" in results[1].task.log.read_text()


@pytest.mark.ray
def test_local_ray_runs_each_task_in_its_own_process_and_reports_failures(tmp_path):
    pytest.importorskip("ray")
    conf = tmp_path / "ray.yaml"
    conf.write_text(yaml.safe_dump({"address": None, "default": {"num_cpus": 1, "num_gpus": 0}}))
    engine = load_engine("ray", conf)
    logs = tmp_path / "logs"
    tasks = [shell_task(0, "echo pid $$", logs), shell_task(1, "echo pid $$; exit 5", logs)]
    try:
        results = engine.run("decode", "stage6", tasks)
    finally:
        import ray

        ray.shutdown()
    assert results[0].ok and not results[1].ok and results[1].state == "exit 5"
    pids = {t.log.read_text().split()[1] for t in tasks}
    assert len(pids) == 2 and str(os.getpid()) not in pids
