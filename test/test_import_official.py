"""Importing the official DeSTA2.5 release: official key names in, a loadable export directory out."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from toolkit.bin.import_official import main as import_official
from toolkit.models.lalm import LALM


def official_state_dict(adapter) -> dict:
    """Our adapter's weights renamed to the release's ``perception.connector.*`` names."""
    return {f"perception.connector.{k}": v.clone() + 0.5 for k, v in adapter.state_dict().items()}


def test_official_checkpoint_becomes_a_loadable_export(tmp_path, tiny_model_config):
    import yaml

    torch.manual_seed(0)
    model = LALM.from_config(tiny_model_config)
    official = official_state_dict(model.adapter)
    save_file(official, str(tmp_path / "model.safetensors"))
    config = tmp_path / "tiny_official.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in tiny_model_config.items()}))
    import_official(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "export"), "--config", str(config)])
    loaded = LALM.from_pretrained(tmp_path / "export")
    for key, value in loaded.adapter.state_dict().items():
        assert torch.equal(value, official[f"perception.connector.{key}"]), key


def test_mismatched_checkpoint_names_the_problem(tmp_path, tiny_model_config):
    import yaml

    model = LALM.from_config(tiny_model_config)
    official = official_state_dict(model.adapter)
    official.pop(next(k for k in official if "crossattention.output.dense.bias" in k))
    save_file(official, str(tmp_path / "model.safetensors"))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(dict(tiny_model_config)))
    with pytest.raises(Exception, match="missing"):
        import_official(["--checkpoint", str(tmp_path / "model.safetensors"), "--out", str(tmp_path / "x"), "--config", str(config)])


def test_the_official_model_config_builds_on_meta_with_the_release_size():
    from toolkit.bin.import_official import DEFAULT_CONFIG
    from toolkit.config import load_config
    from toolkit.models.loading import skip_weights

    with skip_weights():
        model = LALM.from_config(load_config(DEFAULT_CONFIG))
    assert model.parameter_counts()["adapter"]["trainable"] == 131_540_224
    assert model.encoder.reference_compatible
    assert load_config(DEFAULT_CONFIG).lalm.transcript_max_tokens is None  # not cut at inference, as the reference


# -- a new user's first import: release folders, head counts, tokenizer checks, devices ------------------------

def tiny_official_release(tmp_path, tiny_dirs, layout: str):
    """A release folder shaped like the hub's (config.json + model.safetensors), with a tiny connector.

    The connector is built from the official YAML with only the paths changed and the release's
    config.json fields (1 layer, 4 queries, whisper-tiny taps) applied, as the importer does.
    """
    import json

    from toolkit.bin.import_official import DEFAULT_CONFIG
    from toolkit.config import load_config, to_container
    from toolkit.models.adapters import ADAPTERS
    from toolkit.models.adapters.base import adapter_runtime
    from toolkit.models.encoders import ENCODERS

    cfg = to_container(load_config(DEFAULT_CONFIG, [f"encoder.model_path={tiny_dirs['tiny-whisper']}", "adapter.num_layers=1",
                                                    "adapter.num_queries=4", "encoder.tapped_layers=[0,1,2,3]"]))
    encoder = ENCODERS.build(cfg["encoder"], "encoder")
    torch.manual_seed(0)
    adapter = ADAPTERS.build(cfg["adapter"], "adapter", **adapter_runtime(cfg["adapter"], encoder, 64))
    release_config = {"model_type": "desta25", "llm_model_id": "DeSTA-ntu/Llama-3.1-8B-Instruct",
                      "encoder_model_id": "openai/whisper-tiny", "connector_mode": "qformer_1",
                      "qformer_num_hidden_layers": 1, "prompt_size": 4, "use_lora": False}
    if layout == "local-dir":  # huggingface-cli download REPO --local-dir DIR
        folder = tmp_path / "DeSTA2.5-Audio-Llama-3.1-8B"
        root = folder
    else:  # huggingface-cli download REPO: the hub cache, files as symlinks into blobs/
        repo = tmp_path / "hub" / "models--DeSTA-ntu--DeSTA2.5-Audio-Llama-3.1-8B"
        folder = repo / "snapshots" / "0123abcd"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("0123abcd")
        root = tmp_path / "hub"
    folder.mkdir(parents=True)
    official = official_state_dict(adapter)
    save_file(official, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(release_config))
    return root, official, adapter


@pytest.mark.parametrize("layout", ["local-dir", "hub-cache"])
def test_release_folder_imports_with_only_paths_and_runs_on_cpu(tmp_path, tiny_dirs, layout, capsys):
    root, official, adapter = tiny_official_release(tmp_path, tiny_dirs, layout)
    paths = [f"encoder.model_path={tiny_dirs['tiny-whisper']}", f"transcriber.model_path={tiny_dirs['tiny-whisper']}",
             f"llm.model_path={tiny_dirs['tiny-llama']}"]
    import_official(["--release", str(root), "--out", str(tmp_path / "export"), *paths])
    printed = capsys.readouterr().out
    assert "qformer_num_hidden_layers -> adapter.num_layers: 1" in printed
    assert "encoder_model_id=openai/whisper-tiny -> encoder.tapped_layers: [0, 1, 2, 3]" in printed
    assert f"{len(official)} tensors perception.connector.* -> adapter.*" in printed
    assert "perception.connector.qformer.layer.* -> adapter.qformer.layer.*" in printed
    # The official YAML puts the transcriber on cuda: from_pretrained(device="cpu") must move it.
    assert load_config_of(tmp_path / "export")["transcriber"]["device"] == "cuda"
    model = LALM.from_pretrained(tmp_path / "export", overrides=["transcriber.max_new_tokens=3", "generation.max_new_tokens=3"],
                                 device="cpu")
    assert model.transcriber.device == "cpu"
    assert model.adapter.num_heads == model.encoder.num_heads == adapter.num_heads
    for key, value in model.adapter.state_dict().items():
        assert torch.equal(value.to(official[f"perception.connector.{key}"].dtype), official[f"perception.connector.{key}"]), key
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    out = model.generate([{"role": "user", "content": "<|AUDIO|>\nWhat is said?", "audios": [{"audio": wave}]}], return_details=True)
    assert isinstance(out["text"], str) and len(out["transcripts"]) == 1  # Whisper ran, on the CPU


def load_config_of(export_dir):
    from toolkit.config import load_config, to_container

    return to_container(load_config(export_dir / "config.yaml"))


def test_release_with_lora_or_unknown_encoder_is_refused_naming_the_field(tmp_path, tiny_dirs):
    import json

    from toolkit.models.official import OfficialCheckpointError, release_overrides

    with pytest.raises(OfficialCheckpointError, match="use_lora"):
        release_overrides({"use_lora": True})
    with pytest.raises(OfficialCheckpointError, match="encoder_model_id 'facebook/wav2vec2'"):
        release_overrides({"encoder_model_id": "facebook/wav2vec2"})
    root, _, _ = tiny_official_release(tmp_path, tiny_dirs, "local-dir")
    (root / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="huggingface-cli download DeSTA-ntu/DeSTA2.5-Audio-Llama-3.1-8B"):
        import_official(["--release", str(root), "--out", str(tmp_path / "x")])
    json.loads((root / "config.json").read_text())


def test_qformer_heads_default_to_the_encoders_own(tiny_model_config):
    """tiny-whisper: width 64 with 4 heads; the old default (width // 64) would silently build 1 head."""
    cfg = {**tiny_model_config, "adapter": {k: v for k, v in tiny_model_config["adapter"].items() if k != "num_heads"}}
    model = LALM.from_config(cfg)
    assert model.encoder.num_heads == model.encoder.config.encoder_attention_heads
    assert model.adapter.num_heads == model.encoder.num_heads != model.encoder.output_size // 64
    assert model.adapter.qformer.layer[0].attention.self.num_heads == model.encoder.num_heads
    assert model.config["adapter"]["num_heads"] == model.encoder.num_heads  # written down: shapes do not show it
    explicit = LALM.from_config({**cfg, "adapter": {**cfg["adapter"], "num_heads": 2}})
    assert explicit.adapter.num_heads == 2


def test_tokenizer_that_drops_spaces_is_refused_with_the_fix(tmp_path, tiny_dirs):
    import json
    import shutil

    from toolkit.models.llms import LLMS

    folder = tmp_path / "llama"
    shutil.copytree(tiny_dirs["tiny-llama"], folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "LlamaTokenizer"}))
    with pytest.raises(ValueError, match="Describetheaudiofile") as err:
        LLMS.build({"name": "hf_causal_lm", "model_path": str(folder), "dtype": "float32"}, "llm")
    assert '"tokenizer_class": "PreTrainedTokenizerFast"' in str(err.value) and "tokenizer_config.json" in str(err.value)
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "PreTrainedTokenizerFast"}))
    llm = LLMS.build({"name": "hf_causal_lm", "model_path": str(folder), "dtype": "float32"}, "llm")  # the fix works
    assert llm.tokenizer.decode(llm.tokenizer("Describe the audio file.", add_special_tokens=False)["input_ids"]) == "Describe the audio file."


def test_moving_the_model_moves_the_transcriber(tiny_model_config, tiny_dirs):
    cfg = {**tiny_model_config, "transcriber": {"name": "whisper", "model_path": tiny_dirs["tiny-whisper"], "device": "cuda"}}
    model = LALM.from_config(cfg)
    assert model.transcriber.device == "cuda"  # as configured, until the model is placed
    model.to("cpu")
    assert model.transcriber.device == "cpu"
