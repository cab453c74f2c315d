"""One small generic registry (timm style) reused for maskings, backbones, objectives, grids.

>>> maskings = Registry("masking")
>>> @maskings.register()
... def none(**kw): ...
>>> maskings.list()
['none']

Third-party packages add plug-ins through the entry-point group ``asma_bench.plugins``:
each entry point names a module (or callable) that, when loaded, registers its plug-ins.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from asma_bench.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Callable[..., Any])

PLUGIN_GROUP = "asma_bench.plugins"
_plugins_loaded = False


def load_plugins() -> None:
    """Import every ``asma_bench.plugins`` entry point once (they register on import)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type):
                obj()
        except Exception as exc:  # a broken plug-in must not break the built-ins
            log.warning("plug-in %s failed to load: %s", ep.name, exc)


def check_params(
    factory: Callable[..., Any],
    params: dict[str, Any],
    what: str,
    context: tuple[str, ...] = (),
) -> None:
    """ConfigError unless ``factory`` accepts every key of ``params`` (or takes ``**kw``)
    and ``params`` holds every parameter it requires. ``context`` names arguments the code
    supplies (a layout, the input channels): a user's parameter of that name is unknown."""
    signature = inspect.signature(factory)
    fields = signature.parameters.values()
    named = [p.name for p in fields if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    open_ended = any(p.kind is p.VAR_KEYWORD for p in fields)
    accepted = sorted(k for k in named if k not in context)
    for key in params:
        if key in context or (key not in accepted and not open_ended):
            raise ConfigError(
                f"{what}: unknown parameter {key!r}; accepted: {', '.join(accepted) or '(none)'}"
            )
    missing = [
        p.name
        for p in fields
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in params
        and p.name not in context
    ]
    if missing:
        raise ConfigError(f"{what}: missing parameter(s) {', '.join(missing)}")


class Registry(Generic[T]):
    """Name → factory mapping with ``register``, ``create``, ``list`` and clear errors."""

    def __init__(self, kind: str, context: tuple[str, ...] = (), name_attribute: str | None = None):
        self.kind = kind
        #: arguments the code passes to every entry (a masking's layout): not parameters
        self.context = context
        #: class attribute set to the key a class is registered under (a masking's ``name``),
        #: unless the class itself already sets it (then an earlier key, or its own)
        self.name_attribute = name_attribute
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
        def deco(fn: T) -> T:
            key = name or fn.__name__
            if key in self._entries and not override:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = fn
            attribute = self.name_attribute
            if attribute and isinstance(fn, type) and attribute not in vars(fn):
                setattr(fn, attribute, key)
            return fn

        return deco

    def get(self, name: str) -> T:
        load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            available = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {available}") from None

    def create(self, name: str, /, context: dict[str, Any] | None = None, **params: Any) -> Any:
        """Build ``name`` with ``params``, checked first against its signature: an unknown
        or missing parameter is one ConfigError naming the entry and what it accepts.
        ``context`` holds the registry's context arguments (see ``Registry(context=)``)."""
        factory = self.get(name)
        check_params(factory, params, f"{self.kind} {name!r}", self.context)
        return factory(**(context or {}), **params)

    def list(self, pattern: str = "*") -> list[str]:
        load_plugins()
        return sorted(k for k in self._entries if fnmatch.fnmatch(k, pattern))

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())
