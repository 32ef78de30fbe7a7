"""Exports as transformers models (AutoConfig/AutoModel, no trust_remote_code), their model card and hub upload."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from toolkit.models.lalm import LALM


@pytest.fixture(scope="module")
def export_dir(tiny_model_config, tmp_path_factory):
    """A trained-model folder with a training summary and scored results, through the export stage."""
    from toolkit.bin.export import main as export

    root = tmp_path_factory.mktemp("run")
    rows = root / "train.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "dataset": "librispeech" if i < 3 else "esc50"}) + "\n" for i in range(4)))
    torch.manual_seed(0)
    model = LALM.from_config(tiny_model_config)
    model.save_pretrained(root / "train" / "model", extra={"training": {"global_step": 7, "train": {
        "lr": 1e-4, "batch_size": 2, "seed": 0, "data": {"train_jsonl": str(rows)}}}})
    (root / "RESULTS.md").write_text("# Results: tiny\n\n## mini_test\n\n| set | metric | value | count | judge | notes |\n"
                                     "|---|---|---:|---:|---|---|\n| mini_test | wer | 42.00 | 3 | - |  |\n")
    conf = root / "export.yaml"
    conf.write_text(yaml.safe_dump({"export": {"model_dir": str(root / "train" / "model"), "output_dir": str(root / "export")}}))
    export(["--config", str(conf)])
    return root / "export"


def conversation(wave):
    return [{"role": "user", "content": "<|AUDIO|>\nWhat is said?", "audios": [{"audio": wave, "text": "hello there"}]}]


def test_automodel_loads_the_export_and_generates_the_same(export_dir):
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(export_dir)
    assert type(config).__name__ == "DestaLALMConfig" and config.desta["adapter"]["num_queries"] == 4
    hf = AutoModel.from_pretrained(export_dir, device="cpu")
    ours = LALM.from_pretrained(export_dir)
    assert type(hf).__name__ == "DestaLALMModel"
    for (k, a), (k2, b) in zip(hf.lalm.state_dict().items(), ours.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    waves = [np.random.default_rng(i).standard_normal(8000 + 4000 * i).astype(np.float32) * 0.1 for i in range(2)]
    batch = [conversation(w) for w in waves]
    got, want = hf.generate(batch, return_details=True), ours.generate(batch, return_details=True)
    assert [g["text"] for g in got] == [w["text"] for w in want] and all(g["num_tokens"] > 0 for g in got)


def test_one_config_json_serves_transformers_and_vllm(export_dir, tiny_dirs):
    from toolkit.models.hf_auto import MODEL_TYPE, VLLM_ARCHITECTURE
    from toolkit.serve.vllm_plugin import ARCHITECTURE

    assert VLLM_ARCHITECTURE == ARCHITECTURE  # the deliberate copy across the models/serve boundary
    config = json.loads((export_dir / "config.json").read_text())
    from pathlib import Path

    llm = json.loads((Path(tiny_dirs["tiny-llama"]) / "config.json").read_text())
    assert config["model_type"] == MODEL_TYPE and config["architectures"] == [ARCHITECTURE]
    text = config["text_config"]  # what vLLM sizes the backbone from (get_text_config)
    for key in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings"):
        assert text[key] == llm[key], key
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(export_dir).get_text_config().hidden_size == llm["hidden_size"]


def test_model_card_names_components_data_results_config_and_use(export_dir, tiny_dirs):
    card = (export_dir / "README.md").read_text()
    assert f"`{tiny_dirs['tiny-whisper']}` (frozen)" in card and f"`{tiny_dirs['tiny-llama']}` (frozen)" in card
    assert "trained by desta-toolkit (7 steps)" in card
    assert "| librispeech | 3 |" in card and "| esc50 | 1 |" in card and "| **total** | 4 |" in card
    assert "| mini_test | wer | 42.00 | 3 | - |  |" in card
    assert (export_dir / "config.yaml").read_text().strip() in card
    for use in ("AutoModel.from_pretrained(", "toolkit.bin.serve --backend vllm", "toolkit.bin.demo --model"):
        assert use in card
    info = json.loads((export_dir / "model_info.json").read_text())
    assert info["training"]["global_step"] == 7  # the training summary travels with the export


def test_push_to_hub_uploads_the_export_folder(export_dir, tmp_path, monkeypatch):
    """No hub here: everything up to the upload call runs; huggingface_hub's two calls are recorded instead."""
    import huggingface_hub

    from toolkit.bin.export import main as export

    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, **kw: calls.append(("upload", kw)) or "https://hub/commit/1")
    conf = tmp_path / "e.yaml"
    conf.write_text(yaml.safe_dump({"export": {"model_dir": str(export_dir), "output_dir": str(tmp_path / "pushed")}}))
    export(["--config", str(conf), "export.push_to_hub=someone/desta-tiny", "export.hub_private=true"])
    assert calls[0] == ("create", "someone/desta-tiny", {"private": True, "exist_ok": True, "repo_type": "model"})
    upload = calls[1][1]
    assert upload["repo_id"] == "someone/desta-tiny" and upload["folder_path"] == str(tmp_path / "pushed")
    assert "# someone/desta-tiny" in (tmp_path / "pushed" / "README.md").read_text()
    assert (tmp_path / "pushed" / ".done").is_file()


def test_import_toolkit_stays_light_and_registers_when_transformers_loads(export_dir):
    code = ("import sys, toolkit\nprint('transformers' in sys.modules, 'torch' in sys.modules)\n"
            f"from transformers import AutoConfig\nprint(type(AutoConfig.from_pretrained({str(export_dir)!r})).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["False", "False"] and out[-1] == "DestaLALMConfig"


def test_registration_is_idempotent_when_transformers_came_first():
    import toolkit
    from transformers import AutoModel
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from toolkit.models.hf_auto import DestaLALMConfig, DestaLALMModel

    toolkit._install_transformers_hook()  # transformers is loaded here: registers at once, twice is fine
    assert CONFIG_MAPPING["desta_lalm"] is DestaLALMConfig
    assert AutoModel._model_mapping[DestaLALMConfig] is DestaLALMModel
