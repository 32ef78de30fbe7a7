"""Every shipped YAML parses, validates and builds on the meta device (no weights, no download)."""

from pathlib import Path

import pytest

from toolkit.config import load_config, to_container
from toolkit.models.lalm import LALM, check_model_config
from toolkit.models.loading import skip_weights

ROOT = Path(__file__).resolve().parent.parent
# egs/eval configs decode a given model_dir (no model nodes); test/test_recipes_configs.py checks them.
# conf/<engine>.yaml (slurm, ray) are engine resource files, checked in test/drills/test_engines.py
RECIPE_CONFIGS = sorted(p for p in (ROOT / "egs").glob("*/*/conf/*.yaml")
                        if p.parts[-4] != "eval" and p.stem not in ("local", "slurm", "ray")
                        and not p.stem.endswith("_targets"))  # stage-4-only configs (no model)
GROUPS = {"encoder": "ENCODERS", "adapter": "ADAPTERS", "llm": "LLMS", "transcriber": "TRANSCRIBERS"}


def test_there_are_recipe_configs():
    assert any(p.parts[-4] == "mini" for p in RECIPE_CONFIGS)


@pytest.mark.parametrize("path", RECIPE_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_recipe_config_validates_and_builds_on_meta(path):
    cfg = load_config(path)
    assert check_model_config(cfg) == []
    with skip_weights():
        model = LALM.from_config(cfg)
    counts = model.parameter_counts()
    assert counts["adapter"]["trainable"] > 0 and counts["llm"]["total"] > 0


@pytest.mark.parametrize("group", list(GROUPS))
def test_component_group_files_validate(group):
    import importlib

    registry = getattr(importlib.import_module(f"toolkit.models.{group}s"), GROUPS[group])
    runtime = frozenset({"input_size", "num_inputs", "output_size"}) if group == "adapter" else frozenset()
    files = sorted((ROOT / "toolkit" / "conf" / group).glob("*.yaml"))
    assert files
    for f in files:
        node = to_container(load_config(f))
        assert registry.check(node, f"{group}/{f.name}", runtime) == [], f
