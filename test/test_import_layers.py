"""Imports point one way (DESIGN.md): bin/ -> stages -> models -> core; nothing in toolkit/ imports bin/.

Read from the source (no module is imported), so the test is cheap and names each offending file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLKIT = ROOT / "toolkit"
CORE = {p.stem for p in TOOLKIT.glob("*.py") if p.stem != "__init__"}  # config, registry, audio, jsonl, shards ...
STAGES = ("decode", "score", "selfgen", "train")
# Known debt, to be removed rather than added to: IFEval's sentence counting finds the NLTK data in the asset cache.
# (The eval-row decoder that stage 7's controls share with stage 6 lives in toolkit.models.eval_decoding.)
ALLOWED_EXTRA: dict[tuple[str, str], set[str]] = {}


def _part(module: str) -> str:
    """``toolkit.score.judges.hf`` -> ``score``; a top-level module (``toolkit.config``) -> ``core``."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in CORE:
        return "core"
    return parts[1]


def _imports(paths) -> list[tuple[str, str, str]]:
    """(file, importing part, imported toolkit module) for every toolkit import in ``paths``."""
    found = []
    for path in paths:
        rel = str(path.relative_to(ROOT))
        parts = path.relative_to(TOOLKIT).parts if TOOLKIT in path.parents else ()
        source = "core" if len(parts) == 1 else (parts[0] if parts else path.relative_to(ROOT).parts[0])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "toolkit":
                found.append((rel, source, node.module))
            elif isinstance(node, ast.Import):
                found += [(rel, source, a.name) for a in node.names if a.name.split(".")[0] == "toolkit"]
    return found


def test_stages_import_only_models_data_core_and_themselves():
    bad = []
    for rel, source, module in _imports(p for s in STAGES for p in (TOOLKIT / s).rglob("*.py")):
        target = _part(module)
        if target not in ("models", "data", "core", source) and rel not in ALLOWED_EXTRA.get((source, target), ()):
            bad.append(f"{rel}: imports {module}")
    assert not bad, "stages import only toolkit.models, toolkit.data, core modules and themselves:\n" + "\n".join(bad)


def test_models_and_data_import_no_stage_server_cli_or_asset_builder():
    bad = [f"{rel}: imports {module}" for rel, source, module in
           _imports(p for s in ("models", "data") for p in (TOOLKIT / s).rglob("*.py"))
           if _part(module) not in ("models", "core") and not (source == "data" and _part(module) == "data")]
    assert not bad, "\n".join(bad)


def test_config_imports_nothing_and_registry_only_config():
    imports = [(rel, module) for rel, _, module in _imports([TOOLKIT / "config.py", TOOLKIT / "registry.py"])]
    # config.py may use the one atomic file write (toolkit/files.py imports nothing of the toolkit)
    assert [m for r, m in imports if r == "toolkit/config.py" and m != "toolkit.files"] == [], imports
    assert {m for r, m in imports if r == "toolkit/registry.py"} == {"toolkit.config"}, imports


def test_nothing_outside_bin_imports_bin():
    files = [p for p in TOOLKIT.rglob("*.py") if "bin" not in p.relative_to(TOOLKIT).parts[:1]]
    files += list((ROOT / "bench").rglob("*.py"))
    bad = [f"{rel}: imports {module}" for rel, _, module in _imports(files) if module.startswith("toolkit.bin")]
    assert not bad, "library and benchmark code must not import the CLIs:\n" + "\n".join(bad)
