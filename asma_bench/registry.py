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


class Registry(Generic[T]):
    """Name → factory mapping with ``register``, ``create``, ``list`` and clear errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
        def deco(fn: T) -> T:
            key = name or fn.__name__
            if key in self._entries and not override:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = fn
            return fn

        return deco

    def get(self, name: str) -> T:
        load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            available = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {available}") from None

    def create(self, name: str, /, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

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
