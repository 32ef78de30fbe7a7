"""The one Registry: registration, unknown names, key checks against constructor signatures."""

import pytest

from toolkit.registry import ConfigKeyError, Registry, RegistryError


class Base:
    pass


def make_registry():
    reg = Registry("widget", base=Base, variable="WIDGETS")

    @reg.register("small")
    class Small(Base):
        def __init__(self, size: int, color: str = "red"):
            self.size, self.color = size, color

    return reg, Small


def test_build_passes_keys_as_constructor_arguments():
    reg, Small = make_registry()
    obj = reg.build({"name": "small", "size": 3})
    assert isinstance(obj, Small) and obj.size == 3 and obj.color == "red"
    assert reg.choices() == ["small"]


def test_unknown_name_lists_registered_names():
    reg, _ = make_registry()
    with pytest.raises(RegistryError) as err:
        reg.get("large")
    assert "unknown widget 'large'" in str(err.value) and "small" in str(err.value)


def test_misspelled_key_names_key_class_and_valid_keys():
    reg, _ = make_registry()
    with pytest.raises(ConfigKeyError) as err:
        reg.build({"name": "small", "size": 1, "colour": "blue"}, where="model.widget")
    msg = str(err.value)
    assert "model.widget.colour" in msg and "Small" in msg and "color" in msg and "size" in msg


def test_missing_required_key_and_runtime_keys():
    reg, _ = make_registry()
    problems = reg.check({"name": "small"})
    assert any("size" in p and "required" in p for p in problems)
    # a key the build code provides must not appear in YAML
    problems = reg.check({"name": "small", "size": 1}, provided_at_build=frozenset({"size"}))
    assert any("set by the toolkit" in p for p in problems)
    assert reg.build({"name": "small"}, size=5).size == 5


def test_base_class_enforced_and_double_registration_refused():
    reg, Small = make_registry()
    with pytest.raises(TypeError):
        @reg.register("other")
        class NotAWidget:
            pass
    with pytest.raises(RegistryError):
        @reg.register("small")
        class Small2(Base):
            pass


def test_every_slot_registry_has_its_components():
    from toolkit.models.adapters import ADAPTERS
    from toolkit.models.encoders import ENCODERS
    from toolkit.models.llms import LLMS
    from toolkit.models.transcribers import TRANSCRIBERS
    from toolkit.models.chat_engines import CHAT_ENGINES

    assert {"whisper", "wavlm", "hubert", "wav2vec2", "s3prl"} <= set(ENCODERS.choices())
    assert {"qformer", "mlp", "window_qformer", "pooled"} <= set(ADAPTERS.choices())
    assert "hf_causal_lm" in LLMS.choices()
    assert {"whisper", "given", "none"} <= set(TRANSCRIBERS.choices())
    assert {"hf", "vllm", "openai"} <= set(CHAT_ENGINES.choices())


def test_unknown_name_hint_names_the_registry_variable_and_its_package():
    reg = Registry("corpus", variable="CORPORA", components="toolkit.data.corpora")
    with pytest.raises(RegistryError) as err:
        reg.get("timit")
    msg = str(err.value)
    assert "@CORPORA.register('timit')" in msg and "module of toolkit.data.corpora" in msg and "CORPUSS" not in msg


def _toolkit_registries() -> dict[str, tuple[str, str]]:
    """Every ``NAME = Registry(...)`` in the package: NAME -> (defining module, components package)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = {}
    for path in sorted((root / "toolkit").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and getattr(node.value.func, "id", None) == "Registry"):
                keywords = {k.arg: ast.literal_eval(k.value) for k in node.value.keywords if k.arg != "base"}
                module = ".".join(path.relative_to(root).with_suffix("").parts)
                found[node.targets[0].id] = (module, keywords.get("components"), keywords.get("variable"))
    return found


def _registered_in_source(variable: str) -> set[str]:
    """The names every ``@VARIABLE.register("name")`` line in toolkit/ registers."""
    import re
    from pathlib import Path

    pattern = re.compile(rf"^@{variable}\.register\(\"([\w.-]+)\"\)", re.M)
    root = Path(__file__).resolve().parents[1] / "toolkit"
    return {m for path in root.rglob("*.py") for m in pattern.findall(path.read_text())}


def test_every_registry_lists_its_built_ins_right_after_a_fresh_import():
    """In a fresh interpreter, importing only the module that defines a registry is enough for ``choices()``."""
    import json
    import subprocess
    import sys

    registries = _toolkit_registries()
    assert {"ENCODERS", "ADAPTERS", "LLMS", "TRANSCRIBERS", "CORPORA", "SCORERS", "JUDGES", "BENCHMARKS",
            "PREDICTION_SCORERS", "CHAT_ENGINES", "ENGINES"} <= set(registries)
    for variable, (module, components, declared) in registries.items():
        assert declared == variable, f"{module}: Registry(variable=...) must be {variable!r}, is {declared!r}"
        assert components, f"{module}.{variable}: give the package its components live in (components=...)"
        script = (f"import json; from {module} import {variable} as r\n"
                  f"try:\n    r.get('no-such-name')\nexcept KeyError as e:\n    msg = str(e)\n"
                  f"print(json.dumps([r.choices(), msg]))")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        choices, message = json.loads(out.stdout.strip().splitlines()[-1])
        expected = _registered_in_source(variable)
        assert expected, f"no @{variable}.register(...) line found under toolkit/"
        assert set(choices) == expected, f"{variable} after importing {module}: {choices}, source registers {expected}"
        assert f"@{variable}.register('no-such-name')" in message, message
