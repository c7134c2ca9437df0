"""Named components (stages now; readers, detectors ... later) from the core and from plugins.

A plugin is a distribution that declares an entry point in the group ``videoinv.plugins``; the
entry point names a callable ``register(registry)`` that adds its components with
:meth:`Registry.add`. The callable must be cheap: heavy dependencies are imported when a
component is used, never at registration. A plugin that fails to load is reported in the log
and skipped; the core keeps working.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

from .errors import ChainError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "videoinv.plugins"
# core modules that register components with a module-level ``register(registry)``
BUILTIN_MODULES = ("videoinv.pipeline.builtin", "videoinv.faces.stages", "videoinv.edit.stages")


class Registry:
    def __init__(self, builtin_modules=BUILTIN_MODULES, group: str | None = ENTRY_POINT_GROUP):
        self._items: dict[str, dict[str, object]] = {}
        self._origin: dict[tuple[str, str], str] = {}
        self._builtin_modules = builtin_modules
        self._group = group
        self._loaded = False
        self.failed: dict[str, str] = {}  # plugin name -> error

    def add(self, kind: str, name: str, obj: object, origin: str = "core") -> None:
        """Register ``obj`` as the ``kind`` called ``name`` (a later plugin may not shadow the core)."""
        self._load()
        known = self._items.setdefault(kind, {})
        if name in known:
            log.warning("%s %r from %s ignored: already provided by %s", kind, name, origin,
                        self._origin[(kind, name)])
            return
        known[name] = obj
        self._origin[(kind, name)] = origin

    def add_stage(self, cls, origin: str = "core") -> None:
        """Register a :class:`~videoinv.pipeline.stage.Stage` subclass under its ``name``."""
        self.add("stage", cls.name, cls, origin)

    def get(self, kind: str, name: str) -> object:
        self._load()
        known = self._items.get(kind, {})
        if name not in known:
            hint = "".join(f"; plugin {p} failed to load: {e}" for p, e in self.failed.items())
            raise ChainError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(known)) or '(none)'}{hint}")
        return known[name]

    def names(self, kind: str) -> list[str]:
        self._load()
        return sorted(self._items.get(kind, {}))

    def origin(self, kind: str, name: str) -> str:
        self._load()
        return self._origin[(kind, name)]

    def stage(self, name: str):
        """The Stage class called ``name``."""
        return self.get("stage", name)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module).register(self)
        if self._group is None:
            return
        for ep in entry_points(group=self._group):
            try:
                register = ep.load()
                register(_Scoped(self, f"plugin {ep.name} ({ep.value})"))
            except Exception as err:  # noqa: BLE001 - a broken plugin must not break the core
                self.failed[ep.name] = f"{type(err).__name__}: {err}"
                log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, err)


class _Scoped:
    """The registry as a plugin sees it: its additions are tagged with the plugin's name."""

    def __init__(self, registry: Registry, origin: str):
        self._registry = registry
        self._origin = origin

    def add(self, kind: str, name: str, obj: object) -> None:
        self._registry.add(kind, name, obj, origin=self._origin)

    def add_stage(self, cls) -> None:
        self._registry.add_stage(cls, origin=self._origin)


_default: Registry | None = None


def default_registry() -> Registry:
    global _default
    if _default is None:
        _default = Registry()
    return _default
