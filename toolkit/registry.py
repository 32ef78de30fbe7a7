"""One ``Registry`` class for every pluggable part of the toolkit.

A registry owns a name -> class (or function) table for one slot (encoders, adapters, llms,
transcribers, selfgen backends, scorers, judges, corpora ...).  Components register themselves in
their own file::

    ENCODERS = Registry("encoder", base=AudioEncoder)

    @ENCODERS.register("whisper")
    class WhisperEncoder(AudioEncoder):
        def __init__(self, model_path: str, tapped_layers: list[int] | None = None): ...

and are built from a config node whose keys mirror the constructor's arguments::

    ENCODERS.build({"name": "whisper", "model_path": "openai/whisper-tiny.en"})

An unknown name fails listing the registered ones; an unknown key fails naming the key, the class
and the valid keys, and a value of the wrong type (``max_steps: ten``, ``tapped_layers: 3``) fails
naming the key, the annotation and the value (see :func:`check_arguments`) -- before anything loads.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any


class RegistryError(KeyError):
    """A name that no component registered, or a clash between two registrations."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


from toolkit.config import ConfigError, to_container  # noqa: E402  (core: the registry reports bad config like the loader does)


class ConfigKeyError(ConfigError):
    """Config keys that do not match a component's constructor (a ConfigError, like every config problem)."""


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


class Registry:
    """A name -> component table for one pluggable slot.

    Args:
        kind: what the slot holds, used in error messages ("encoder", "adapter" ...).
        base: optional base class every registered class must subclass.
    """

    def __init__(self, kind: str, base: type | None = None):
        self.kind = kind
        self.base = base
        self._entries: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator registering a class or builder function under ``name``."""

        def decorator(obj: Callable) -> Callable:
            if name in self._entries and self._entries[name] is not obj:
                raise RegistryError(
                    f"{self.kind} '{name}' is registered twice ({self._entries[name].__module__} and "
                    f"{obj.__module__}); pick another name for one of them"
                )
            if self.base is not None and inspect.isclass(obj) and not issubclass(obj, self.base):
                raise TypeError(f"{self.kind} '{name}': {obj.__qualname__} must subclass {self.base.__qualname__}")
            self._entries[name] = obj
            obj.registered_name = name
            return obj

        return decorator

    def choices(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable:
        """The component registered as ``name``; an unknown name lists the valid ones."""
        if name not in self._entries:
            raise RegistryError(
                f"unknown {self.kind} '{name}'. Registered {self.kind}s: {', '.join(self.choices()) or '(none)'}. "
                f"Fix the 'name:' of the {self.kind} node in your YAML, or register a new {self.kind} "
                f"with @{self.kind.upper()}S.register('{name}')."
            )
        return self._entries[name]

    def check(self, node: Mapping[str, Any], where: str = "", provided_at_build: frozenset[str] = frozenset()) -> list[str]:
        """Every problem with a config node ``{name: ..., **kwargs}`` (without building it)."""
        where = where or self.kind
        if not isinstance(node, Mapping) or "name" not in node:
            return [f"{where}: needs a 'name:' key, one of: {', '.join(self.choices())}"]
        try:
            target = self.get(node["name"])
        except RegistryError as err:
            return [f"{where}.name: {err}"]
        kwargs = {k: v for k, v in node.items() if k != "name"}
        return check_arguments(target, kwargs, where, provided_at_build)

    def build(self, node: Mapping[str, Any], where: str = "", **runtime: Any) -> Any:
        """Build the component of config node ``{name: ..., **kwargs}``.

        ``runtime`` holds arguments that exist only at run time (sizes of the previous component,
        a tokenizer ...); they must not also appear in the node.
        """
        from toolkit.config import to_container

        node = to_container(node)
        problems = self.check(node, where or self.kind, frozenset(runtime))
        if problems:
            raise ConfigKeyError("invalid config:\n  " + "\n  ".join(problems))
        kwargs = {k: v for k, v in node.items() if k != "name"}
        return self.get(node["name"])(**kwargs, **runtime)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.choices()})"


def import_submodules(package: str) -> None:
    """Import every module of ``package`` so their ``@REGISTRY.register`` lines run.

    Dropping a new file into ``toolkit/models/encoders/`` is then all it takes to add an encoder.
    Import errors are not swallowed: a component file must import optional engines lazily (inside
    the constructor) and raise an ImportError naming the pip extra there.
    """
    import importlib
    import pkgutil

    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
