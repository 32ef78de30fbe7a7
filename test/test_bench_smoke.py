"""Every benchmark under bench/ runs at its tiny size (so none can rot), and the harness catches wrong outputs."""

import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from harness import OutputMismatch, Variant, compare, difference  # noqa: E402


def test_harness_interleaves_and_reports_against_the_baseline():
    calls = []

    def make(name, value):
        def run():
            calls.append(name)
            return value

        return run

    out = io.StringIO()
    result = compare(
        "t", [Variant("a", make("a", [1, 2])), Variant("b", make("b", [1, 2]))], baseline="a", repeats=5, out=out
    )
    assert calls[:4] == ["a", "b", "b", "a"]  # interleaved, order rotated each round
    assert len(calls) == 12  # 1 warm-up + 5 timed rounds, 2 variants
    assert result.row("a")["ratio"] == 1.0 and result.row("b")["repeats"] == 5
    assert "min-max" in out.getvalue() and "equal" in out.getvalue()


def test_harness_catches_a_variant_computing_something_else():
    with pytest.raises(OutputMismatch, match="fast"):
        compare(
            "t",
            [Variant("ref", lambda: ["a cat"]), Variant("fast", lambda: ["a dog"])],
            baseline="ref",
            repeats=1,
            out=io.StringIO(),
        )
    # allowed to differ: reported, not raised; numeric outputs within atol are equal
    result = compare(
        "t",
        [
            Variant("ref", lambda: 1.0),
            Variant("other", lambda: 2.0, expect_equal=False),
            Variant("close", lambda: 1.0 + 1e-7, atol=1e-6),
        ],
        baseline="ref",
        repeats=1,
        out=io.StringIO(),
    )
    assert result.row("other")["output_diff"] == 1.0
    assert result.row("close")["within_atol"]
    # a run that cannot be repeated keeps its timings: the mismatch is flagged, not raised
    printed = io.StringIO()
    kept = compare("t", [Variant("ref", lambda: 1.0), Variant("off", lambda: 1.5, atol=0.1)], baseline="ref",
                   repeats=1, out=printed, raise_on_mismatch=False)
    assert not kept.row("off")["within_atol"] and kept.row("off")["median_s"] >= 0
    assert "OVER the allowed 0.1" in printed.getvalue()
    assert difference({"x": [1, 2]}, {"x": [1, 3]}) == float("inf")
    with pytest.raises(ValueError, match="baseline"):
        compare("t", [Variant("a", lambda: 0)], baseline="nope", out=io.StringIO())


BENCHES = {
    "train_step": ["--repeats", "1", "--breakdown"],
    "decode": ["--repeats", "1"],
    "selfgen": ["--repeats", "1"],
    "serve": ["--repeats", "1"],
    "reference": ["--repeats", "1"],
    "matmul": ["--repeats", "1"],
}  # bench/gpu.py runs through bench/gpu.sh below


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_benchmark_runs_at_tiny_size(name, tmp_path):
    # In this process (imports and tiny models are shared across them), each through its own main().
    import importlib

    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "result.json"
    try:
        code = importlib.import_module(name).main(["--tiny", "--json", str(out), *BENCHES[name]])
    finally:
        torch.set_num_threads(threads)  # the benchmarks pin one thread
    assert code == 0
    report = json.loads(out.read_text())
    assert report, f"{name} wrote an empty report"


STAND_IN_WORKER = """
import json, sys
print("Loading LLM model from somewhere")  # the reference's own progress lines share stdout
print(json.dumps({"ready": True, "parameters": {"trainable": 7}}), flush=True)
for line in sys.stdin:
    if line.strip() == "quit":
        break
    if line.strip() == "boom":
        print("Traceback: the reference failed", file=sys.stderr)
        sys.exit(1)
    print("step done")
    print(json.dumps({"loss": 1.5}), flush=True)
"""


def test_reference_worker_protocol_and_a_failing_worker(tmp_path):
    # The reference's column runs in another venv (none in CI); its pipe protocol and failure report run here.
    from reference import ReferenceWorker

    worker = tmp_path / "stand_in.py"
    worker.write_text(STAND_IN_WORKER)
    ref = ReferenceWorker(sys.executable, tmp_path, {"kind": "train"}, tmp_path, "t", worker=worker)
    assert ref.info["parameters"]["trainable"] == 7
    assert ref.call("epoch") == {"loss": 1.5} and ref.call("epoch") == {"loss": 1.5}
    assert json.loads((tmp_path / "reference-t.json").read_text())["reference_dir"] == str(tmp_path)
    with pytest.raises(SystemExit, match=r"(?s)exit 1.*reference-t\.log.*the reference failed.*--reference-python"):
        ref.call("boom")
    ref.close()


def test_gpu_script_runs_on_cpu_at_tiny_size(tmp_path):
    # The script a lent GPU runs, end to end through its shell wrapper, at the tiny size on this CPU.
    import os
    import subprocess

    out = tmp_path / "gpu.json"
    env = {**os.environ, "GPU_RESULT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--tiny", "--steps", "1"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    train = report["train_batch2"]
    assert [v["variant"].split()[0] for v in train["variants"]] == ["padded", "packed"]
    assert train["packed_loss_equal"] and train["leak_control_separated"], train
    assert train["variants"][0]["padding_share"] > 0 == train["variants"][1]["padding_share"]
    assert {"generate", "vllm", "section_s"} <= report.keys()


def test_gpu_script_names_an_empty_wheels_folder(tmp_path):
    import subprocess

    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--wheels", str(tmp_path), "--tiny"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"--wheels {tmp_path} holds no .whl files" in proc.stderr


def test_gpu_demo_epoch_runs_on_cpu_at_tiny_size(tmp_path):
    # --demo's epoch (fixed batches vs a token budget, padded and packed) through the wrapper, tiny shapes.
    import os
    import subprocess

    out = tmp_path / "demo.json"
    env = {**os.environ, "GPU_RESULT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--tiny", "--demo"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    epoch = json.loads(out.read_text())["demo_epoch"]
    assert [v["variant"] for v in epoch["variants"]] == [
        "batch 4, padded", "token budget, padded", "token budget + packing (sdpa)"]
    assert epoch["steps"]["fixed"] > epoch["steps"]["budget"]
    assert epoch["losses_equal"] and epoch["leak_control_separated"], epoch
    assert epoch["variants"][2]["padding_share"] == 0 < epoch["variants"][0]["padding_share"]
    assert epoch["nonfinite"]["padded"] == {"first": None, "batches_with_nonfinite_encoder_layer_output": 0,
                                            "batches_with_nonfinite_padded_encoder_frames": 0}


def test_gpu_nonfinite_locator_names_the_stage(monkeypatch):
    # The NaN an H200 run met must be located by the next one: poison one stage at a time.
    import contextlib

    import torch

    import gpu

    model = gpu.build("tiny", torch.device("cpu"))
    model.eval()
    durations, convs = gpu.demo_clips(4, int(model.llm._base().config.vocab_size))
    frames = [2 * round(d * 50) for d in durations]
    plan = [(convs, {"features": torch.randn(4, 80, max(frames)), "feature_lengths": torch.tensor(frames)},
             [len(c.input_ids) + 8 for c in convs])]

    def locate():
        return gpu.first_nonfinite(model, plan, contextlib.nullcontext(), "sdpa", False)

    clean = {"first": None, "batches_with_nonfinite_encoder_layer_output": 0,
             "batches_with_nonfinite_padded_encoder_frames": 0}
    assert locate() == clean

    # NaN in the padded rows inside the encoder: seen by the layer hook, kept from the clip's frames.
    first_layer = model.encoder.encoder.layers[0]
    real_layer = first_layer.forward
    short = int(torch.tensor(frames).argmin())

    def padded_rows_nan(hidden, *args, **kwargs):
        out = real_layer(hidden, *args, **kwargs)
        out = (out[0] if isinstance(out, tuple) else out).clone()
        out[short, (min(frames) + 1) // 2:] = float("nan")
        return out

    monkeypatch.setattr(first_layer, "forward", padded_rows_nan)
    assert locate() == {**clean, "batches_with_nonfinite_encoder_layer_output": 1}
    monkeypatch.undo()

    real = type(model.encoder).forward

    def valid_nan(self, features, feature_lengths):
        out = real(self, features, feature_lengths)
        out.hidden_states[2][0, 0] = float("nan")
        return out

    monkeypatch.setattr(type(model.encoder), "forward", valid_nan)
    assert locate()["first"]["where"] == "encoder tap 2, valid frames"
    monkeypatch.undo()

    real_adapter = type(model.adapter).forward

    def nan_gradient(self, hidden_states, lengths):
        vectors, n = real_adapter(self, hidden_states, lengths)
        vectors.register_hook(lambda grad: grad * float("nan"))  # finite forward, NaN backward
        return vectors, n

    monkeypatch.setattr(type(model.adapter), "forward", nan_gradient)
    assert locate()["first"]["where"].startswith("gradients of ")
