"""The one config loader: groups, overrides, validation, resolved copies."""

import pytest
import yaml

from toolkit.config import ConfigError, build_section, load_config, save_resolved


@pytest.fixture
def conf_dir(tmp_path):
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "small.yaml").write_text("name: whisper\nmodel_path: /a\n")
    (tmp_path / "encoder" / "big.yaml").write_text("name: wavlm\nmodel_path: /b\n")
    (tmp_path / "base.yaml").write_text("train:\n  lr: 0.1\n  steps: 3\n")
    (tmp_path / "main.yaml").write_text(
        "defaults:\n  - encoder: small\n  - base.yaml\ntag: t1\nexp_dir: exp/${tag}\ntrain:\n  steps: 5\n"
    )
    return tmp_path


def test_defaults_groups_and_file_body_merge(conf_dir):
    cfg = load_config(conf_dir / "main.yaml")
    assert cfg.encoder.name == "whisper" and cfg.train.lr == 0.1 and cfg.train.steps == 5
    assert cfg.exp_dir == "exp/t1"


def test_group_swap_and_dotted_override(conf_dir):
    cfg = load_config(conf_dir / "main.yaml", ["encoder=big", "train.lr=0.5", "tag=t2"])
    assert cfg.encoder.name == "wavlm" and cfg.train.lr == 0.5 and cfg.exp_dir == "exp/t2"


def test_unknown_group_option_lists_available(conf_dir):
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir / "main.yaml", ["encoder=huge"])
    assert "huge" in str(err.value) and "big" in str(err.value) and "small" in str(err.value)


def test_bad_override_syntax(conf_dir):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(conf_dir / "main.yaml", ["train.lr"])


def test_missing_file_names_path(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_section_keys_checked_all_at_once():
    from dataclasses import dataclass

    @dataclass
    class Section:
        lr: float = 0.1
        steps: int = 1

    with pytest.raises(ConfigError) as err:
        build_section({"lr": 1, "stepz": 2, "warmup": 3}, Section, "train")
    assert "train.stepz" in str(err.value) and "train.warmup" in str(err.value) and "steps" in str(err.value)
    assert build_section({"lr": 2.0}, Section, "train").lr == 2.0


def test_resolved_copy_has_interpolations_resolved(conf_dir, tmp_path):
    cfg = load_config(conf_dir / "main.yaml", ["tag=zz"])
    path = save_resolved(cfg, tmp_path / "out")
    data = yaml.safe_load(path.read_text())
    assert data["exp_dir"] == "exp/zz" and "defaults" not in data


def test_cache_interpolation(monkeypatch, tmp_path):
    monkeypatch.setenv("DESTA_CACHE", str(tmp_path / "c"))
    (tmp_path / "x.yaml").write_text("path: ${cache:}/models/a\n")
    assert load_config(tmp_path / "x.yaml").path == f"{tmp_path}/c/models/a"


def test_group_swap_replaces_an_inline_component(tmp_path):
    """An export's config.yaml has components written inline: encoder=... must still swap the whole node."""
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "big.yaml").write_text("name: wavlm\nmodel_path: /b\n")
    (tmp_path / "inline.yaml").write_text("encoder:\n  name: whisper\n  model_path: /a\n  reference_compatible: true\n")
    cfg = load_config(tmp_path / "inline.yaml", ["encoder=big"])
    assert dict(cfg.encoder) == {"name": "wavlm", "model_path": "/b"}


def test_misspelled_top_level_override_is_refused(conf_dir):
    with pytest.raises(ConfigError, match="trian"):
        load_config(conf_dir / "main.yaml", ["trian.lr=0.5"])
    assert load_config(conf_dir / "main.yaml", ["+extra.note=1"]).extra.note == 1


def test_plain_folders_are_not_config_groups(conf_dir):
    (conf_dir / "data").mkdir()  # a recipe's data/ next to conf/ is not a group
    (conf_dir / "main.yaml").write_text((conf_dir / "main.yaml").read_text() + "data: {data_dir: d}\n")
    assert load_config(conf_dir / "main.yaml", ["data.data_dir=x"]).data.data_dir == "x"


def test_a_replace_marked_node_replaces_what_an_include_set(tmp_path):
    (tmp_path / "base.yaml").write_text("selfgen:\n  batch_size: 4\n  backend: {name: hf, llm: x, device: cpu}\n")
    (tmp_path / "main.yaml").write_text("defaults:\n  - base.yaml\nselfgen:\n"
                                        "  backend: {_replace_: true, name: label_template}\n")
    cfg = load_config(tmp_path / "main.yaml")
    assert dict(cfg.selfgen.backend) == {"name": "label_template"} and cfg.selfgen.batch_size == 4
    (tmp_path / "merge.yaml").write_text("defaults:\n  - base.yaml\nselfgen:\n  backend: {name: vllm}\n")
    assert load_config(tmp_path / "merge.yaml").selfgen.backend.llm == "x"  # without the flag: merged
    (tmp_path / "bad.yaml").write_text("defaults:\n  - base.yaml\nselfgen:\n  backend: {_replace_: yes please}\n")
    with pytest.raises(ConfigError, match=r"selfgen.backend._replace_ must be true or false"):
        load_config(tmp_path / "bad.yaml")
