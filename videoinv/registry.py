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
        self._pending = list(builtin_modules)  # core modules not imported yet
        self._importing = False  # a core module is registering its components
        self._group = group
        self._plugins_loaded = False
        self.failed: dict[str, str] = {}  # plugin name -> error

    def add(self, kind: str, name: str, obj: object, origin: str = "core") -> None:
        """Register ``obj`` as the ``kind`` called ``name`` (a later plugin may not shadow the core)."""
        if not self._importing:
            self._load()  # all of the core first: nothing added from outside may shadow it
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
        self._load(kind, name)
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

    def _has(self, kind: str | None, name: str | None) -> bool:
        return name is not None and name in self._items.get(kind, {})

    def _load(self, kind: str | None = None, name: str | None = None) -> None:
        """Import the core modules in order until one gives the ``kind`` called ``name`` (all of
        them where none is named): the later ones, heavy (torch, scipy), wait until a name needs
        them, so that a chain of ``copy`` starts in a fraction of a second. The plugins come once
        all of the core is in, so that they cannot shadow it; a core name never needs them."""
        while self._pending and not self._has(kind, name):
            module = self._pending.pop(0)
            self._importing = True
            try:
                importlib.import_module(module).register(self)
            finally:
                self._importing = False
        if self._pending or self._has(kind, name) or self._plugins_loaded:
            return
        self._plugins_loaded = True
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
