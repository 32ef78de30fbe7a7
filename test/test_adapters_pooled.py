"""The mean-pooled adapter: a fixed vector count, padding never counts, each layer normalised (per frame or by
statistics of the training frames), sizes checked."""

from __future__ import annotations

import pytest
import torch

from toolkit.models.adapters import ADAPTERS


def build(**kw):
    torch.manual_seed(0)
    return ADAPTERS.build({"name": "pooled", **kw}, input_size=32, num_inputs=2, output_size=24).eval()


def test_fixed_count_and_padding_invariance():
    adapter = build(num_vectors=4)
    short = [torch.randn(1, 23, 32) for _ in range(2)]
    long = [torch.randn(1, 50, 32) for _ in range(2)]
    batch = [torch.cat([torch.nn.functional.pad(s, (0, 0, 0, 27), value=7.0), lg]) for s, lg in zip(short, long)]
    with torch.no_grad():
        alone, alone_len = adapter(short, torch.tensor([23]))
        batched, batch_len = adapter(batch, torch.tensor([23, 50]))
    assert alone.shape == (1, 4, 24) and batched.shape == (2, 4, 24)
    assert alone_len.tolist() == [4] and batch_len.tolist() == [4, 4]
    torch.testing.assert_close(batched[0], alone[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])  # another clip, other vectors


def test_an_outlier_channel_does_not_swamp_the_others():
    """Each layer is normalised per frame, so scaling a layer changes nothing."""
    adapter = build(num_vectors=2)
    states = [torch.randn(2, 30, 32), torch.randn(2, 30, 32)]
    lengths = torch.tensor([30, 17])
    with torch.no_grad():
        plain, _ = adapter(states, lengths)
        scaled, _ = adapter([states[0], states[1] * 300.0], lengths)
    torch.testing.assert_close(plain, scaled, rtol=1e-4, atol=1e-4)


def test_initial_vectors_have_the_asked_norm_and_train():
    adapter = build(num_vectors=8, output_scale=3.0)
    adapter.train()
    vectors, _ = adapter([torch.randn(16, 40, 32), torch.randn(16, 40, 32)], torch.full((16,), 40))
    # a mean over 40 frames of unit-variance frames has variance ~1/40 per channel: the norm is 3 / sqrt(40)
    norm = vectors.norm(dim=-1).mean().item()
    assert 0.5 * 3.0 / 40 ** 0.5 < norm < 2.0 * 3.0 / 40 ** 0.5
    vectors.sum().backward()
    assert adapter.proj.weight.grad is not None and adapter.proj.weight.grad.abs().sum() > 0


def test_bad_count_names_the_key():
    with pytest.raises(ValueError, match="num_vectors"):
        build(num_vectors=0)
    with pytest.raises(ValueError, match="adapter.normalize"):
        build(normalize="batch")


def test_global_statistics_are_those_of_every_valid_training_frame():
    adapter = build(num_vectors=2, normalize="global").train()
    torch.manual_seed(1)
    batches = [([torch.randn(3, 20, 32) * 5 + 2, torch.randn(3, 20, 32)], torch.tensor([20, 7, 12])),
               ([torch.randn(2, 9, 32) - 1, torch.randn(2, 9, 32) * 3], torch.tensor([9, 4]))]
    for states, lengths in batches:
        adapter(states, lengths)
    for layer in range(2):
        frames = torch.cat([s[layer][b, :n] for s, lengths in batches for b, n in enumerate(lengths.tolist())]).double()
        assert adapter.frames_seen.item() == frames.shape[0] == 20 + 7 + 12 + 9 + 4
        torch.testing.assert_close(adapter.channel_mean[layer], frames.mean(0))
        torch.testing.assert_close(adapter.channel_var[layer], frames.var(0, unbiased=False))
    adapter.eval()
    before = adapter.channel_mean.clone()
    with torch.no_grad():
        adapter([torch.randn(1, 5, 32) * 100, torch.randn(1, 5, 32)], torch.tensor([5]))
    assert torch.equal(adapter.channel_mean, before)  # eval mode never moves the statistics


def test_global_normalisation_gives_every_channel_unit_scale():
    """Once the statistics are gathered, a channel 300 times larger than the rest reaches the linear map as they do."""
    torch.manual_seed(2)
    states = [torch.randn(4, 30, 32), torch.randn(4, 30, 32)]
    scaled = [states[0].clone(), states[1].clone()]
    scaled[1][..., 5] *= 300.0
    lengths = torch.tensor([30, 17, 25, 9])
    outputs = []
    for inputs in (states, scaled):
        adapter = build(num_vectors=2, normalize="global").train()
        adapter(inputs, lengths)
        with torch.no_grad():
            outputs.append(adapter.eval()(inputs, lengths)[0])
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)
