"""The one config loader: OmegaConf YAML with config groups, ``key=value`` overrides and checks.

The checks bind a node's keys to a constructor's signature (:func:`check_arguments`); ``toolkit.registry``
uses them for every component, so this module imports nothing else of the toolkit.

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

import collections.abc as cabc
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

PACKAGE_CONF = Path(__file__).resolve().parent / "conf"
REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A config that cannot be loaded or does not match what the code expects."""


class AssetMissingError(FileNotFoundError):
    """A cached asset directory (or a model directory a config names) that has not been prepared.

    Defined here, in the core, so that model code can raise it without importing the asset builders.
    """


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
    _replace_marked_nodes(merged, raw, path)
    return OmegaConf.merge(merged, raw)


REPLACE_KEY = "_replace_"


def _replace_marked_nodes(merged: DictConfig, raw: DictConfig, path: Path, prefix: str = "") -> None:
    """A node of ``raw`` holding ``_replace_: true`` replaces what the included files set there instead of
    merging into it (an included ``backend: {name: hf, llm: ...}`` swapped for ``{name: label_template}``)."""
    for key in list(raw.keys()):
        node = raw._get_node(key)
        if not isinstance(node, DictConfig) or OmegaConf.is_missing(raw, key) or node._is_none():
            continue
        where = f"{prefix}{key}"
        if REPLACE_KEY in node:
            flag = node.pop(REPLACE_KEY)
            if not isinstance(flag, bool):
                raise ConfigError(f"{path}: {where}.{REPLACE_KEY} must be true or false, got {flag!r}")
            if flag and isinstance(merged, DictConfig) and key in merged:
                merged.pop(key)
        sub = merged.get(key) if isinstance(merged, DictConfig) else None
        _replace_marked_nodes(sub if isinstance(sub, DictConfig) else OmegaConf.create({}), node, path, f"{where}.")


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


def signature_keys(target: Callable) -> tuple[set[str], set[str], bool]:
    """Return (all keyword names, required names, accepts **kwargs) of a class or function."""
    fn = target.__init__ if inspect.isclass(target) else target
    params = list(inspect.signature(fn).parameters.values())
    if inspect.isclass(target):
        params = params[1:]  # self
    names, required, var_kw = set(), set(), False
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
    return names, required, var_kw


def annotations_of(target: Callable) -> dict[str, Any]:
    """The resolved parameter annotations of a class's constructor (dataclasses too) or a function.

    Annotations are strings under ``from __future__ import annotations``; each is resolved in the
    defining module on its own, so one name that only exists for type checkers leaves the others checked.
    """
    fn = target.__init__ if inspect.isclass(target) else target
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    namespace = {**vars(typing), **(vars(module) if module is not None else {}), **getattr(fn, "__globals__", {})}
    hints = {}
    for name, ann in getattr(fn, "__annotations__", {}).items():
        if name == "return":
            continue
        try:
            # noqa: S307 below: these strings are our own source's annotations
            hints[name] = eval(ann, namespace) if isinstance(ann, str) else ann  # noqa: S307
        except Exception:  # unresolvable (a TYPE_CHECKING-only name): that one value is not type-checked
            continue
    return hints


_SEQUENCES = (list, tuple, set, frozenset, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection,
              cabc.Set, cabc.MutableSet)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)


def value_matches(value: Any, annotation: Any) -> bool:
    """Whether a config value (plain YAML data: None, bool, int, float, str, list, dict) fits ``annotation``.

    Only what YAML can express is judged: scalars, ``X | None``, ``Literal``, lists/tuples/sequences and
    dicts/mappings with their element types.  Any other class (``torch.dtype``, a tokenizer) cannot come
    from YAML as itself, so it is accepted here and left to the component.
    """
    if annotation is Any or annotation is inspect.Parameter.empty or isinstance(annotation, typing.TypeVar):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(value_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str or annotation is os.PathLike or origin is os.PathLike:
        return isinstance(value, str)
    container = origin or annotation
    if container in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if container is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(value_matches(v, a) for v, a in zip(value, args))
        return not args or all(value_matches(v, args[0]) for v in value)
    if container in _MAPPINGS:
        if not isinstance(value, Mapping):
            return False
        return len(args) != 2 or all(value_matches(k, args[0]) and value_matches(v, args[1]) for k, v in value.items())
    return True  # a class YAML cannot hold: the component converts or refuses it itself


def type_name(annotation: Any) -> str:
    """``list[int] | None`` rather than ``typing.Optional[typing.List[int]]``."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return "null" if annotation is type(None) else annotation.__name__
    return str(annotation).replace("typing.", "").replace("collections.abc.", "").replace("NoneType", "None")


def _value_text(value: Any) -> str:
    text = repr(value)
    kind = "null" if value is None else type(value).__name__
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({kind})"


def type_problem(key: str, value: Any, annotation: Any, label: str, has_default: bool = True) -> str | None:
    """One problem line when ``value`` does not fit ``annotation`` (None: it fits)."""
    if value_matches(value, annotation):
        return None
    hint = ""
    if value is None:
        hint = "; null is not allowed here, give a value"
        if has_default:
            hint += " or drop the key to take the default"
    return f"{key}: expects {type_name(annotation)} ({label}), got {_value_text(value)}{hint}"


def check_arguments(
    target: Callable,
    kwargs: Mapping[str, Any],
    where: str,
    provided_at_build: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """List every problem binding ``kwargs`` to ``target``'s signature (empty list: all fine).

    Unknown keys, missing required keys and values that do not fit the annotations
    (:func:`value_matches`) are all reported, so a config's problems come in one error.
    ``provided_at_build`` names the arguments the build code fills in at run time (sizes passed
    from encoder to adapter to LLM), so they are neither required in YAML nor allowed twice.
    """
    names, required, var_kw = signature_keys(target)
    label = getattr(target, "__qualname__", repr(target))
    hints = annotations_of(target)
    problems = []
    for key, value in kwargs.items():
        if key in provided_at_build:
            problems.append(
                f"{where}.{key}: is set by the toolkit at build time for {label}; remove it from the config"
            )
        elif key not in names and not var_kw:
            problems.append(
                f"{where}.{key}: unknown key for {label}; valid keys: {', '.join(sorted(names - set(provided_at_build)))}"
            )
        elif key in hints:
            problem = type_problem(f"{where}.{key}", to_container(value), hints[key], label, key not in required)
            if problem:
                problems.append(problem)
    for key in sorted(required - set(kwargs) - set(provided_at_build)):
        problems.append(f"{where}.{key}: required by {label} but missing from the config")
    return problems


def check_section(node: Any, target: Any, where: str) -> list[str]:
    """Problems binding a plain section (``train:``, ``decode:`` ...) to a dataclass or function."""
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
