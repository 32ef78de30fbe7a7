"""The one config loader: OmegaConf YAML with config groups, ``key=value`` overrides and checks.

A config file may open with a ``defaults:`` list, Hydra style, that pulls other YAML files in::

    defaults:
      - encoder: whisper_tiny_en      # conf/encoder/whisper_tiny_en.yaml -> key "encoder"
      - adapter: qformer_tiny
      - llm: smollm2_135m_instruct
      - base.yaml                     # a plain file, merged at the top level

The file's own keys are merged over its defaults, then command-line overrides over both.  An
override naming a group swaps the whole component (``encoder=wavlm_base_plus``); a dotted one
changes one value (``adapter.num_queries=32``).  Group files are looked up next to the config file
(``<dir>/<group>/<option>.yaml``, then ``<dir>/../<group>/``) and last in the toolkit's own
``toolkit/conf/``.

Interpolations: ``${cache:}`` is the asset cache (``$DESTA_CACHE``, default ``~/.cache/desta-toolkit``),
``${repo:}`` the directory holding the toolkit package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

PACKAGE_CONF = Path(__file__).resolve().parent / "conf"
REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A config that cannot be loaded or does not match what the code expects."""


def cache_dir() -> Path:
    """Where converted assets live: ``$DESTA_CACHE`` or ``~/.cache/desta-toolkit``."""
    return Path(os.environ.get("DESTA_CACHE", Path.home() / ".cache" / "desta-toolkit")).expanduser()


def _register_resolvers() -> None:
    # omegaconf 2.4 renamed register_new_resolver; support both.
    register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
    for name, fn in (("cache", lambda: str(cache_dir())), ("repo", lambda: str(REPO_ROOT))):
        if not OmegaConf.has_resolver(name):
            register(name, fn)


_register_resolvers()


def _group_file(group: str, option: str, search: Sequence[Path]) -> Path:
    tried = []
    for root in search:
        candidate = root / group / f"{option}.yaml"
        tried.append(str(candidate))
        if candidate.is_file():
            return candidate
    options = sorted({p.stem for root in search if (root / group).is_dir() for p in (root / group).glob("*.yaml")})
    raise ConfigError(
        f"config group '{group}' has no option '{option}' (looked in: {', '.join(tried)}). "
        f"Available {group} options: {', '.join(options) or '(none)'}."
    )


def _is_group_name(group: str, search: Sequence[Path]) -> bool:
    """A config group is a folder of option YAMLs (``encoder/``), not any folder (``data/``, ``exp/``)."""
    return any((root / group).is_dir() and any((root / group).glob("*.yaml")) for root in search)


def _load_file(path: Path, group_choices: dict[str, str], search_extra: Sequence[Path] = (),
               consumed: set[str] | None = None) -> DictConfig:
    """Load one YAML with its ``defaults:`` resolved (recursively)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}. Check the --config path.")
    try:
        raw = OmegaConf.load(path)
    except Exception as err:  # yaml errors carry line numbers; keep them
        raise ConfigError(f"cannot parse {path}: {err}") from err
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    search = [path.parent, path.parent.parent, *search_extra, PACKAGE_CONF]
    defaults = raw.pop("defaults", []) if "defaults" in raw else []
    merged = OmegaConf.create({})
    for entry in defaults:
        if isinstance(entry, str):  # plain include
            merged = OmegaConf.merge(merged, _load_file((path.parent / entry).resolve(), group_choices, search_extra, consumed))
            continue
        if not isinstance(entry, (Mapping, DictConfig)) or len(entry) != 1:
            raise ConfigError(f"{path}: each defaults entry is 'file.yaml' or 'group: option', got {entry!r}")
        (group, option), = entry.items()
        if consumed is not None:
            consumed.add(group)
        option = group_choices.get(group, option)
        if option is None:  # "encoder: null" keeps the group empty
            continue
        node = _load_file(_group_file(group, str(option), search), group_choices, search_extra)
        # A group entry replaces the whole component (Hydra's rule), even one a plain include set:
        # swapping whisper for wavlm must not keep whisper-only keys.
        merged[group] = node
    return OmegaConf.merge(merged, raw)


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> DictConfig:
    """Load ``path`` with its defaults and apply ``key=value`` overrides (group swaps first)."""
    path = Path(path).resolve()
    search = [path.parent, path.parent.parent, PACKAGE_CONF]
    group_choices: dict[str, str] = {}
    dotlist: list[str] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value (example: train.max_steps=10)")
        key, value = item.split("=", 1)
        if "." not in key and _is_group_name(key, search) and value and not value.startswith(("{", "[")):
            group_choices[key] = value
        else:
            dotlist.append(item)
    consumed: set[str] = set()
    cfg = _load_file(path, group_choices, consumed=consumed)
    # A group swapped on the command line that no defaults list consumed (a component written inline,
    # as in an export's config.yaml): replace the whole node too, never merge into it.
    for group, option in group_choices.items():
        if group not in consumed:
            cfg[group] = _load_file(_group_file(group, option, search), group_choices)
    unknown = sorted({item.split("=", 1)[0] for item in dotlist
                      if not item.startswith("+") and item.split("=", 1)[0].split(".")[0] not in cfg})
    if unknown:
        raise ConfigError(
            f"override key(s) {unknown} match no top-level key of {path.name} (top-level keys: {', '.join(sorted(cfg))}); "
            f"fix the spelling, or write +key=value to add a new key on purpose"
        )
    dotlist = [item.lstrip("+") for item in dotlist]
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
    except Exception as err:
        raise ConfigError(f"bad override in {dotlist}: {err}") from err
    OmegaConf.set_struct(cfg, False)
    return cfg


def to_container(node: Any) -> Any:
    """A plain dict/list copy of an OmegaConf node with interpolations resolved."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def save_resolved(cfg: Any, out_dir: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the resolved config next to the outputs it produced; returns the file path."""
    from toolkit.files import atomic_write_text

    return atomic_write_text(Path(out_dir) / name, OmegaConf.to_yaml(OmegaConf.create(to_container(cfg))))


def check_section(node: Any, target: Any, where: str) -> list[str]:
    """Problems binding a plain section (``train:``, ``decode:`` ...) to a dataclass or function."""
    from toolkit.registry import check_arguments

    node = to_container(node) or {}
    if not isinstance(node, Mapping):
        return [f"{where}: must be a mapping, got {type(node).__name__}"]
    return check_arguments(target, node, where)


def build_section(node: Any, target: Any, where: str) -> Any:
    """Build a dataclass (or call a function) from a section, reporting every bad key at once."""
    problems = check_section(node, target, where)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return target(**(to_container(node) or {}))


def raise_if_problems(problems: Sequence[str]) -> None:
    """Raise one ConfigError listing every problem (no-op when the list is empty)."""
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def parse_cli(argv: Sequence[str] | None = None, description: str = "", extra_args: Any = None):
    """Standard stage CLI: ``--config FILE [key=value ...]``; returns (args, cfg).

    ``extra_args(parser)`` may add stage-specific flags (``--shard``, ``--nshards`` ...).
    """
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--force", action="store_true",
                        help="redo this stage from scratch: ignore its done marker and resumable outputs")
    if extra_args is not None:
        extra_args(parser)
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=10 encoder=wavlm_base_plus")
    args = parser.parse_args(argv)
    _install_user_error_hook()
    return args, load_config(args.config, args.overrides)


def _install_user_error_hook() -> None:
    """Stage CLIs: a config, data or asset mistake prints its one-paragraph message, not a traceback.

    The messages already name the file or key and the fix; ``DESTA_DEBUG=1`` brings tracebacks back.
    """
    import sys

    if os.environ.get("DESTA_DEBUG"):
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        names = {cls.__name__ for cls in kind.__mro__}
        if names & {"ConfigError", "AudioError", "AssetMissingError", "RegistryError", "DataDirError", "DataError", "ChecksumError",
                                    "PredictionFormatError", "JudgeError", "CheckpointError", "TextFileError"}:
            print(f"error ({kind.__name__}): {value}\n(set DESTA_DEBUG=1 for the traceback)", file=sys.stderr)
            sys.exit(2)
        previous(kind, value, tb)

    sys.excepthook = hook
