"""Sequence packing (same loss and gradients as padded rows) and token/seconds-budget batches."""

import copy

import pytest
import torch

from toolkit.models.chat import AUDIO_TOKEN
from toolkit.models.lalm import LALM
from toolkit.models.packing import block_causal_mask, pack_rows, packed_positions
from toolkit.train.data import BucketBatchSampler


def conv(prompt, n_audio=1):
    return [{"role": "user", "content": prompt, "audios": [{"audio": None, "text": "hello"}] * n_audio}]


def conversations(model):
    fmt = model.formatter
    return [
        fmt.encode(conv(f"{AUDIO_TOKEN}\nWhat is said?"), ["hello"], response="Short."),
        fmt.encode(
            conv(f"Listen: {AUDIO_TOKEN} then {AUDIO_TOKEN}. Compare them in detail please.", 2),
            ["a b c", ""],
            response="A much longer answer than the other one, with many words.",
        ),
        fmt.encode(conv(f"{AUDIO_TOKEN}\nDescribe it."), ["one two three four"], response="Music and a dog."),
    ]


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def model(request, tiny_model_config):
    cfg = copy.deepcopy(tiny_model_config)
    cfg["llm"]["attn_implementation"] = request.param
    torch.manual_seed(0)
    m = LALM.from_config(cfg).eval()
    assert m.llm.attn_implementation == request.param
    return m


def waves4(waves):
    return [waves[0], waves[1], waves[2], waves[0][:4000]]  # 4 audios for the 3 conversations


@pytest.mark.parametrize("pack_length", [10_000, 80])  # everything in one sequence; several sequences
def test_packed_loss_and_gradients_equal_padded(model, waves, pack_length):
    convs = conversations(model)
    feats = model.encoder.feature_extractor()(waves4(waves))
    params = [p for p in model.adapter.parameters()]
    padded = model(conversations=convs, features=feats)
    grads_padded = torch.autograd.grad(padded["loss"], params)
    packed = model(conversations=convs, features=feats, pack_length=pack_length)
    grads_packed = torch.autograd.grad(packed["loss"], params)
    assert int(packed["n_targets"]) == int(padded["n_targets"]) > 0
    assert torch.allclose(packed["loss"], padded["loss"], rtol=1e-5, atol=1e-6), (packed["loss"], padded["loss"])
    for a, b in zip(grads_packed, grads_padded):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_packing_really_packs_and_isolates_rows(model, waves):
    convs = conversations(model)
    feats = model.encoder.feature_extractor()(waves4(waves))
    embeds, lengths = model.encode_audio(feats)
    batch = model.assemble(convs, embeds, lengths, pack_length=10_000)
    assert batch["inputs_embeds"].shape[0] == 1  # three rows, one sequence
    # Each row's hidden states in the packed sequence equal those of the row alone.
    hidden = model.llm.decoder_hidden_states(batch["inputs_embeds"], batch["attention_mask"], batch["position_ids"])[0]
    start, k = 0, 0
    for c in convs:
        n_audio = len(c.audio_slots)
        alone = model.assemble([c], embeds[k : k + n_audio], lengths[k : k + n_audio])
        labels = alone.pop("labels")
        h = model.llm.decoder_hidden_states(**alone)[0]
        assert torch.allclose(hidden[start : start + h.shape[0]], h, atol=1e-5)
        start, k = start + h.shape[0], k + n_audio
        del labels


def test_pack_rows_first_fit_decreasing():
    lengths = [50, 30, 70, 20, 90, 10, 200]
    bins = pack_rows(lengths, 100)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert [6] in bins  # longer than the capacity: a sequence of its own
    assert all(sum(lengths[i] for i in b) <= 100 for b in bins if b != [6])
    assert len(bins) == 4  # 200 | 90+10 | 70+30 | 50+20
    with pytest.raises(ValueError, match="capacity"):
        pack_rows(lengths, 0)


def test_block_causal_mask_forms():
    positions, segments = packed_positions([[2, 3]], 7)
    assert positions.tolist() == [[0, 1, 0, 1, 2, 0, 1]]
    assert segments.tolist() == [[0, 0, 1, 1, 1, 2, 2]]
    allowed = block_causal_mask(segments, "sdpa", torch.float32)
    assert allowed.dtype == torch.bool and allowed.shape == (1, 1, 7, 7)
    assert allowed[0, 0, 3].tolist() == [False, False, True, True, False, False, False]
    additive = block_causal_mask(segments, "eager", torch.bfloat16)
    assert additive.dtype == torch.bfloat16 and torch.equal(additive[0, 0] == 0, allowed[0, 0])
    for implementation in ("flash_attention_2", "flex_attention"):  # they read the rows from position_ids
        assert block_causal_mask(segments, implementation, torch.bfloat16) is None


def test_flex_attention_packed_loss_equals_padded(tiny_model_config, waves):
    # transformers builds flex attention's block mask from the restarted position ids alone; a row that
    # saw its neighbours would change the loss.  Forward only: PyTorch runs flex's backward on GPUs.
    torch.manual_seed(0)
    m = LALM.from_config(copy.deepcopy(tiny_model_config)).eval()
    convs = conversations(m)
    feats = m.encoder.feature_extractor()(waves4(waves))
    with torch.no_grad():
        padded = m(conversations=convs, features=feats)["loss"]
        m.llm._base().set_attn_implementation("flex_attention")
        assert m.llm.attn_implementation == "flex_attention"
        packed = m(conversations=convs, features=feats, pack_length=10_000)["loss"]
    assert torch.allclose(packed, padded, rtol=1e-5, atol=1e-6), (packed, padded)


def test_token_budget_batches_fit_and_cover():
    durations = [1.0 + (i % 6) for i in range(40)]
    tokens = [60 + 10 * (i % 6) + (i % 7) for i in range(40)]
    for bucketing in (True, False):
        sampler = BucketBatchSampler(durations, tokens, batch_size=1000, seed=3, batch_tokens=400, bucketing=bucketing)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(40))
        assert all(len(b) * max(tokens[i] for i in b) <= 400 for b in batches)
        assert len(sampler) == len(batches)
    bucketed = BucketBatchSampler(durations, tokens, batch_size=1000, seed=3, batch_tokens=400)
    plain = BucketBatchSampler(durations, tokens, batch_size=1000, seed=3, batch_tokens=400, bucketing=False)
    assert len(list(bucketed)) < len(list(plain))  # sorted rows pad less, so more of them fit a budget
    seconds = BucketBatchSampler(durations, tokens, batch_size=3, seed=0, batch_seconds=8.0)
    for b in seconds:
        assert len(b) <= 3 and (len(b) == 1 or len(b) * max(durations[i] for i in b) <= 8.0)
    assert [len(b) for b in BucketBatchSampler([1.0], [999], batch_size=4, batch_tokens=10)] == [1]  # over budget alone


def test_budget_batches_split_evenly_across_ranks():
    durations = [1.0 + (i % 5) for i in range(33)]
    tokens = [50 + (i % 5) * 20 for i in range(33)]
    ranks = [
        list(BucketBatchSampler(durations, tokens, batch_size=64, seed=1, num_replicas=2, rank=r, batch_tokens=300))
        for r in range(2)
    ]
    assert len(ranks[0]) == len(ranks[1])
    assert set(i for r in ranks for b in r for i in b) == set(range(33))
    with pytest.raises(ValueError, match="batch_tokens"):
        BucketBatchSampler(durations, tokens, batch_size=4, batch_tokens=0)


def _train_losses(root, **train):
    import test_train_fakes as fakes
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from toolkit.bin.train import main

    corpus = fakes.make_corpus(root, n_train=16, n_dev=0)
    cfg = fakes.write_config(root, corpus, train={"max_steps": 3, "batch_size": 16, "batch_tokens": 300, **train})
    assert main(["--config", str(cfg)]) == 0
    ev = EventAccumulator(str(root / "exp" / "tb"), size_guidance={"scalars": 0}).Reload()
    return [e.value for e in ev.Scalars("train/loss")]


def test_training_cli_packed_losses_equal_unpacked(tmp_path, monkeypatch):
    # Same token-budget batches, same dropout draws: packing must leave every step's loss unchanged.
    unpacked = _train_losses(tmp_path / "a")
    sequences = []
    original = LALM._assemble_packed

    def spy(self, rows_ids, *rest):
        out = original(self, rows_ids, *rest)
        sequences.append((len(rows_ids), out["inputs_embeds"].shape[0]))
        return out

    monkeypatch.setattr(LALM, "_assemble_packed", spy)
    packed = _train_losses(tmp_path / "b", packing=True, pack_length=256)
    assert len(sequences) == 3 and sum(n for n, _ in sequences) > sum(p for _, p in sequences), sequences  # really packed
    assert len(unpacked) == len(packed) == 3
    assert packed == pytest.approx(unpacked, rel=1e-5, abs=1e-6)


def test_pack_length_without_packing_is_refused():
    from toolkit.train.settings import TrainSettings

    problems = TrainSettings(output_dir="x", data={"train_jsonl": "t"}, pack_length=64, max_steps=1).problems()
    assert any("train.packing" in p for p in problems)
    problems = TrainSettings(output_dir="x", data={"train_jsonl": "t"}, batch_tokens=0, max_steps=1).problems()
    assert any("train.batch_tokens must be > 0" in p for p in problems)
