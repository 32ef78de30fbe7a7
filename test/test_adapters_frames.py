"""Frame-based adapters (mlp, window_qformer): token counts grow with duration, padding invariance."""

from __future__ import annotations

import pytest
import torch

from toolkit.models.adapters import ADAPTERS


def build(name: str, **kw):
    torch.manual_seed(0)
    return ADAPTERS.build({"name": name, **kw}, input_size=32, num_inputs=2, output_size=24).eval()


@pytest.mark.parametrize("name, kw, per_frames", [
    ("mlp", {"stack_frames": 4}, lambda n: -(-n // 4)),
    ("window_qformer", {"window_size": 17, "queries_per_window": 2, "num_layers": 1, "num_heads": 2}, lambda n: -(-n // 17) * 2),
])
def test_lengths_and_alone_vs_batched(name, kw, per_frames):
    adapter = build(name, **kw)
    short = [torch.randn(1, 23, 32) for _ in range(2)]
    long = [torch.randn(1, 50, 32) for _ in range(2)]
    batch = [torch.cat([torch.nn.functional.pad(s, (0, 0, 0, 27), value=5.0), l]) for s, l in zip(short, long)]
    with torch.no_grad():
        alone, alone_len = adapter(short, torch.tensor([23]))
        batched, batch_len = adapter(batch, torch.tensor([23, 50]))
    n = per_frames(23)
    assert alone_len.tolist() == [n] and batch_len.tolist() == [n, per_frames(50)]
    assert alone.shape == (1, n, 24) and batched.shape == (2, per_frames(50), 24)
    torch.testing.assert_close(batched[0, :n], alone[0, :n], rtol=1e-5, atol=1e-5)
    assert batch_len[1] > batch_len[0]  # tokens grow with duration


@pytest.mark.parametrize("name, kw", [
    ("mlp", {"stack_frames": 4}),
    ("window_qformer", {"window_size": 17, "queries_per_window": 2, "num_layers": 1, "num_heads": 2}),
    ("qformer", {"num_layers": 1, "num_queries": 4, "hidden_size": 32, "num_heads": 2}),
    ("pooled", {}),
])
@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_non_finite_padding_never_reaches_a_clip(name, kw, poison):
    # Every adapter, the frame-based ones and the fixed-count ones: padded frames are ignored whatever they hold
    # (a NaN a fused bf16 kernel leaves there must not turn the batch's loss into NaN).
    adapter = build(name, **kw)
    short = [torch.randn(1, 23, 32) for _ in range(2)]
    long = [torch.randn(1, 50, 32) for _ in range(2)]
    batch = [torch.cat([torch.nn.functional.pad(s, (0, 0, 0, 27), value=poison), lg]) for s, lg in zip(short, long)]
    with torch.no_grad():
        alone, n = adapter(short, torch.tensor([23]))
    batched, _ = adapter(batch, torch.tensor([23, 50]))
    assert torch.isfinite(batched).all()
    torch.testing.assert_close(batched[0, : int(n[0])], alone[0, : int(n[0])], rtol=1e-5, atol=1e-5)
    batched.sum().backward()  # nor its gradients (a fusion's backward multiplies by every frame)
    grads = [p.grad for p in adapter.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["mlp", "window_qformer"])
def test_layer_weights_start_uniform_and_train(name):
    adapter = build(name)
    torch.testing.assert_close(adapter.layer_weight_probs(), torch.tensor([0.5, 0.5]))
    adapter.train()
    audio, _ = adapter([torch.randn(2, 40, 32), torch.randn(2, 40, 32)], torch.tensor([40, 12]))
    audio.sum().backward()
    assert adapter.layer_weights.grad is not None and adapter.layer_weights.grad.abs().sum() > 0


def test_bad_sizes_fail_with_the_key():
    with pytest.raises(ValueError, match="stack_frames"):
        build("mlp", stack_frames=0)
    with pytest.raises(ValueError, match="window_size"):
        build("window_qformer", window_size=0)
