"""The vLLM plugin's processor and audio embedding, without vLLM: they build what ``LALM.generate`` builds.

``toolkit.serve.vllm_plugin.processing`` is what the plugin's vLLM classes run. For the same requests
(given transcripts, a missing one, two audios in one turn, a system turn) the prompt ids it hands vLLM,
with every audio's placeholders expanded, and the audio embeddings it feeds, are compared with the
``inputs_embeds`` that ``LALM.generate`` passes to the LLM, for each adapter (a fixed count and two
counts that grow with duration). The real engine is tested in ``test_serve_vllm.py`` where vLLM is installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.models.lalm import LALM
from toolkit.serve.vllm_plugin.processing import PromptProcessor, embed_audios, load_export_config

ADAPTERS = {
    "qformer": {"name": "qformer", "num_layers": 1, "num_queries": 4, "num_heads": 4, "intermediate_size": 64,
                "dropout": 0.0},
    "mlp": {"name": "mlp", "stack_frames": 4},
    "window_qformer": {"name": "window_qformer", "window_size": 9, "queries_per_window": 2, "num_layers": 1,
                       "num_heads": 4, "intermediate_size": 64, "dropout": 0.0},
}


def clip(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def conversations() -> list[list[dict]]:
    return [
        [{"role": "user", "content": "<|AUDIO|>\nWhat is said?",
          "audios": [{"audio": clip(1.3, 0), "text": "hello there"}]}],
        [{"role": "user", "content": "First <|AUDIO|> then <|AUDIO|>\nCompare them.",  # the second: the transcriber's
          "audios": [{"audio": clip(0.6, 1), "text": "a dog barks"}, {"audio": clip(2.1, 2)}]}],
        [{"role": "system", "content": "Answer briefly."},
         {"role": "user", "content": "Describe <|AUDIO|> in one word.",
          "audios": [{"audio": clip(3.7, 3), "text": " rain "}]}],
    ]


class Captured(Exception):
    """Stops ``generate`` once the LLM has been handed its inputs."""


def generate_inputs(model: LALM, conv: list[dict], monkeypatch) -> torch.Tensor:
    """The ``inputs_embeds`` ``LALM.generate`` hands the LLM for ``conv`` (one conversation: no padding)."""
    seen = []

    def capture(**kwargs):
        seen.append(kwargs["inputs_embeds"])
        raise Captured

    monkeypatch.setattr(model.llm.model, "generate", capture)
    with pytest.raises(Captured):
        model.generate(conv)
    return seen[0][0]


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_plugin_processor_builds_what_lalm_generate_builds(adapter, tiny_model_config, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = LALM.from_config({**tiny_model_config, "adapter": ADAPTERS[adapter]}).eval()
    # built from the export directory, as vLLM's processes build it
    processor = PromptProcessor(load_export_config(model.save_pretrained(tmp_path / "export")))
    for conv in conversations():
        audios = [a for m in conv for a in m.get("audios") or []]
        waves, given = [a["audio"] for a in audios], [a.get("text") for a in audios]
        prompt = processor.formatter.render_prompt(conv)  # the text the decode stage sends; vLLM tokenizes it whole
        prompt_ids = processor.formatter.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        out = processor.process(prompt_ids, waves, given)
        embeds = embed_audios(model.encoder, model.adapter, out.waveforms, model.llm.dtype)
        assert [e.shape[0] for e in embeds] == [n for _, n in out.placeholders]  # declared counts = the model's

        expected = generate_inputs(model, conv, monkeypatch)
        transcripts = model.transcribe(waves, given)
        _, lengths = model.encode_waveforms(waves)
        ids, _, offsets = model.formatter.encode(conv, transcripts).spliced(lengths.tolist(), model.placeholder_id)
        assert out.prompt_token_ids == ids and out.placeholders == list(zip(offsets, lengths.tolist()))
        with torch.no_grad():
            ours = model.llm.embed(torch.tensor([out.prompt_token_ids]))[0].clone()
        for (offset, n), vectors in zip(out.placeholders, embeds):
            ours[offset : offset + n] = vectors
        assert ours.shape == expected.shape
        torch.testing.assert_close(ours, expected)  # text ids, placeholder positions and audio vectors all agree
        assert out.transcripts == transcripts


def test_placeholder_budget_follows_the_adapter_and_the_server_limit(tiny_model_config, tmp_path, monkeypatch):
    """vLLM reserves room per audio for the longest accepted clip: fixed for a Q-Former, growing for a frame adapter."""
    monkeypatch.delenv("DESTA_MAX_AUDIO_SECONDS", raising=False)
    exports = {}
    for name in ("qformer", "mlp"):
        model = LALM.from_config({**tiny_model_config, "adapter": ADAPTERS[name]})
        exports[name] = load_export_config(model.save_pretrained(tmp_path / name))
    qformer, mlp = PromptProcessor(exports["qformer"]), PromptProcessor(exports["mlp"])
    assert qformer.max_vectors_per_audio() == 4 and qformer.profile_seconds() == 30.0
    # Whisper takes max_chunks (10) windows of 30 s: 300 s = 15000 frames, 4 per vector
    assert mlp.max_vectors_per_audio() == 3750 and mlp.profile_seconds() == 300.0
    monkeypatch.setenv("DESTA_MAX_AUDIO_SECONDS", "20")  # what python -m toolkit.bin.serve --max-audio-seconds 20 sets
    mlp = PromptProcessor(exports["mlp"])
    assert mlp.max_vectors_per_audio() == 250 and mlp.profile_seconds() == 20.0


def test_processor_refuses_a_placeholder_audio_mismatch(tiny_model_config, tmp_path):
    processor = PromptProcessor(load_export_config(LALM.from_config(tiny_model_config).save_pretrained(tmp_path / "e")))
    ids = processor.formatter.tokenizer("<|AUDIO|><|AUDIO|>", add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="2 <|AUDIO|> placeholder.*1 audio"):
        processor.process(ids, [clip(1.0, 0)])
    with pytest.raises(ValueError, match="transcripts has 1 entries for 2 audios"):
        processor.process(ids, [clip(1.0, 0), clip(1.0, 1)], ["x"])


def test_weightless_builds_stay_in_their_thread():
    """The processor counts through a meta-device build while the server's other threads load real weights."""
    import threading

    from toolkit.models.loading import skip_weights, weights_enabled

    seen = []
    with skip_weights():
        worker = threading.Thread(target=lambda: seen.append((weights_enabled(), torch.empty(1).device.type)))
        worker.start(), worker.join()
        assert not weights_enabled()
    assert seen == [(True, "cpu")] and weights_enabled()
