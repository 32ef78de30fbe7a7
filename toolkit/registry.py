"""One ``Registry`` class for every pluggable part of the toolkit.

A registry owns a name -> class (or function) table for one slot (encoders, adapters, llms,
transcribers, selfgen backends, scorers, judges, corpora ...).  Components register themselves in
their own file::

    ENCODERS = Registry("encoder", base=AudioEncoder, variable="ENCODERS", components="toolkit.models.encoders")

    @ENCODERS.register("whisper")
    class WhisperEncoder(AudioEncoder):
        def __init__(self, model_path: str, tapped_layers: list[int] | None = None): ...

and are built from a config node whose keys mirror the constructor's arguments::

    ENCODERS.build({"name": "whisper", "model_path": "openai/whisper-tiny.en"})

An unknown name fails listing the registered ones; an unknown key fails naming the key, the class
and the valid keys, and a value of the wrong type (``max_steps: ten``, ``tapped_layers: 3``) fails
naming the key, the annotation and the value (:func:`toolkit.config.check_arguments`) -- before anything
loads.  The registry imports the config module, never the other way round.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from toolkit.config import ConfigError, check_arguments, to_container


class RegistryError(KeyError):
    """A name that no component registered, or a clash between two registrations."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ConfigKeyError(ConfigError):
    """Config keys that do not match a component's constructor (a ConfigError, like every config problem)."""


class Registry:
    """A name -> component table for one pluggable slot.

    Args:
        kind: what the slot holds, used in error messages ("encoder", "adapter" ...).
        base: optional base class every registered class must subclass.
        variable: the module-level name the registry is bound to (``ENCODERS``), so an unknown name
            tells the user the decorator to write.
        components: the package whose modules register the built-in components.  It is imported
            (every module in it, :func:`import_submodules`) on the first lookup, so ``choices()``,
            ``get()`` and ``build()`` see every built-in whichever module the registry was imported from,
            while importing the registry itself stays cheap and free of import cycles.
    """

    def __init__(self, kind: str, base: type | None = None, *, variable: str, components: str | None = None):
        self.kind = kind
        self.base = base
        self.variable = variable
        self.components = components
        self._entries: dict[str, Callable] = {}
        self._loaded = components is None

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: a component module that looks a name up while importing must not recurse
            try:
                import_submodules(self.components)
            except BaseException:
                self._loaded = False  # a failed import is retried (and re-raised) on the next lookup
                raise

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
        """The registered names, sorted (built-ins included, see ``components``)."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def get(self, name: str) -> Callable:
        """The component registered as ``name``; an unknown name lists the valid ones."""
        self._load()
        if name not in self._entries:
            raise RegistryError(
                f"unknown {self.kind} '{name}'. Registered {self.kind} names: {', '.join(self.choices()) or '(none)'}. "
                f"Fix the 'name:' of the {self.kind} node in your YAML, or register a new {self.kind} "
                f"with @{self.variable}.register('{name}')"
                + (f" in a new module of {self.components}." if self.components else ".")
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
