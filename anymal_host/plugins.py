"""Plugin discovery and the registry of what plugins contribute.

Plugins are modules registered under the entry-point group ``anymal``. Each hook implementation is called on
its own, so a plugin that fails to import or to register is recorded (``anymal plugins`` shows it) and every
other plugin still works. ``ANYMAL_LOAD_PLUGINS`` (comma-separated entry-point or distribution names) limits
which installed plugins load; set it to an empty string to load none but the built-in defaults.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pluggy

from . import hookspecs
from .default_plugins import DEFAULT_PLUGINS
from .errors import PluginError, RegistrationError, UnknownModalityError, UnsupportedAttachmentError

if TYPE_CHECKING:
    from .modality import DatasetSpec, Modality

__all__ = ["PluginInfo", "Registry", "get_registry", "reset_registry", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "anymal"
LOAD_PLUGINS_ENV = "ANYMAL_LOAD_PLUGINS"


@dataclass
class PluginInfo:
    """What ``anymal plugins`` shows about one plugin."""

    name: str
    version: str | None = None
    distribution: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> names it registered
    errors: list[str] = field(default_factory=list)
    default: bool = False


@dataclass
class _Entry:
    value: Any
    plugin: str


class Registry:
    """Everything the installed plugins registered: modalities, projectors, data sets, bundled adapters."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._modalities: dict[str, _Entry] = {}
        self._projectors: dict[str, _Entry] = {}
        self._datasets: dict[str, _Entry] = {}
        self._adapters: dict[str, _Entry] = {}
        self._collected = False
        self._collecting = False
        self._lock = threading.RLock()
        #: Problems that belong to no single plugin (``anymal plugins`` prints them).
        self.warnings: list[str] = []

    # ----- building -------------------------------------------------------------------------------------

    @classmethod
    def from_environment(cls, extra_plugins: Iterable[Any] = ()) -> "Registry":
        """The default plugins, the installed entry-point plugins (limited by ``ANYMAL_LOAD_PLUGINS``), and
        ``extra_plugins`` (modules or objects with hookimpls, e.g. a test plugin)."""
        registry = cls()
        for module_name in DEFAULT_PLUGINS:
            registry.add_plugin(importlib.import_module(module_name), name=module_name, default=True)
        registry.load_entry_points()
        for plugin in extra_plugins:
            registry.add_plugin(plugin)
        return registry

    def load_entry_points(self) -> None:
        allowed = os.environ.get(LOAD_PLUGINS_ENV)
        allowed_names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        seen: set[str] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            seen.update({ep.name, *([ep.dist.name] if ep.dist is not None else [])})
            dist = ep.dist.name if ep.dist is not None else None
            if allowed_names is not None and ep.name not in allowed_names and dist not in allowed_names:
                continue
            info = PluginInfo(name=ep.name, distribution=dist, version=ep.dist.version if ep.dist else None)
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.errors.append(
                    f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}. "
                    f"Reinstall or upgrade {dist or ep.name}, or leave it out with {LOAD_PLUGINS_ENV}."
                )
                self.plugins[ep.name] = info
                continue
            self.add_plugin(module, name=ep.name, info=info)
        for name in sorted((allowed_names or set()) - seen):
            self.warnings.append(f"{LOAD_PLUGINS_ENV} names {name!r}, but no installed plugin has that entry-point or "
                                 f"distribution name (installed: {', '.join(sorted(seen)) or 'none'})")

    def add_plugin(self, plugin: Any, name: str | None = None, default: bool = False, info: PluginInfo | None = None) -> str:
        """Register a module or object carrying ``@hookimpl`` functions. Returns the name it is known by."""
        with self._lock:
            name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
            if name in self.plugins and self.pm.has_plugin(name):
                raise PluginError(f"a plugin named {name!r} is already loaded: give the second one another name")
            info = info or PluginInfo(name=name, default=default, version=_module_version(plugin))
            info.default = default
            try:
                self.pm.register(plugin, name=name)
            except Exception as exc:
                info.errors.append(f"failed to register hooks: {type(exc).__name__}: {exc}")
                self.plugins[name] = info
                return name
            info.hooks = sorted(impl.name for impl in _hook_names(self.pm, plugin))
            self.plugins[name] = info
            self._collected = False
            return name

    def call_hook(self, hook_name: str, kwargs_for: Callable[[str], dict[str, Any]],
                  after_each: Callable[[str], None] | None = None,
                  on_error: Callable[[str], None] | None = None) -> None:
        """Call every implementation of ``hook_name`` in pluggy's order (``tryfirst`` first, ``trylast`` last,
        otherwise the later-registered plugin first), each on its own: a plugin that raises is recorded against
        its name (``anymal plugins`` shows it) and the next one is still called. ``kwargs_for(plugin_name)``
        gives the arguments for that plugin's call (its own validating ``register`` callback);
        ``after_each(plugin_name)`` runs after each successful call, ``on_error(plugin_name)`` after a failed one
        (to undo what the plugin did before it raised).

        Why not ``pm.hook.X(...)``: pluggy stops at the first exception, and one broken plugin would take every
        later one down. The order is pluggy's own: ``get_hookimpls()`` lists implementations in the reverse of
        the order pluggy calls them. Wrappers (``wrapper=True`` / ``hookwrapper=True``) cannot wrap isolated
        calls, so they are refused with a message saying so."""
        with self._lock:
            for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
                plugin_name = impl.plugin_name
                if impl.hookwrapper or getattr(impl, "wrapper", False):
                    self.record_error(plugin_name, f"{hook_name}: hook wrappers (wrapper=True / hookwrapper=True) are "
                                                   f"not supported by anymal's register hooks; use a plain @hookimpl "
                                                   f"(tryfirst=True / trylast=True to order it)")
                    continue
                try:
                    impl.function(**kwargs_for(plugin_name))
                except Exception as exc:
                    self.record_error(plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}" + (
                        "" if isinstance(exc, RegistrationError) else "\n" + traceback.format_exc(limit=3)))
                    if on_error is not None:
                        on_error(plugin_name)
                    continue
                if after_each is not None:
                    after_each(plugin_name)

    def record_error(self, plugin_name: str, message: str) -> None:
        """Record a problem of one plugin; ``anymal plugins`` shows it and the other plugins keep working."""
        with self._lock:
            info = self.plugins.setdefault(plugin_name, PluginInfo(name=plugin_name))
            info.errors.append(message)

    def _collect(self) -> None:
        """Call every registration hook, one plugin at a time, isolating failures (see :meth:`call_hook`)."""
        with self._lock:
            if self._collected:
                return
            if self._collecting:  # a hook asked the registry for what it is still being built from
                raise RegistrationError("a plugin hook queried the registry (modalities, datasets...) while the "
                                        "registry was being built: register descriptions only, and look things "
                                        "up when they are used, not at registration")
            self._collecting = True
            try:
                self._collect_all()
            finally:
                self._collecting = False

    def _collect_all(self) -> None:
        with self._lock:
            self._modalities.clear(); self._projectors.clear(); self._datasets.clear(); self._adapters.clear()
            for info in self.plugins.values():
                info.registered.clear()
                info.errors = [e for e in info.errors if e.startswith("failed to import") or e.startswith("failed to register hooks")]
            for hook_name, register_for in (
                ("register_projectors", self._projector_register),
                ("register_modalities", self._modality_register),
                ("register_datasets", self._dataset_register),
                ("register_adapters", self._adapter_register),
            ):
                self.call_hook(hook_name, lambda plugin_name, r=register_for: {"register": r(plugin_name)})
            self._collected = True

    def _record(self, table: dict[str, _Entry], kind: str, name: str, value: Any, plugin: str) -> None:
        if name in table:
            other = table[name].plugin
            if self.plugins[plugin].default and not self.plugins[other].default:
                # A built-in name is never taken over, whichever plugin pluggy called first: the built-in goes in,
                # and the plugin that claimed its name is the one reported.
                self.plugins[other].registered[kind].remove(name)
                self.record_error(other, f"{kind} {name!r} from plugin {other!r} is already registered by plugin "
                                         f"{plugin!r} (built-in): rename the {kind}")
            else:
                # Refused, and the plugin's hook goes on with its other names: the same outcome whichever of
                # the two plugins pluggy called first.
                self.record_error(plugin, f"{kind} {name!r} from plugin {plugin!r} is already registered by plugin "
                                          f"{other!r}: uninstall one of them or rename the {kind}")
                return
        table[name] = _Entry(value, plugin)
        self.plugins[plugin].registered.setdefault(kind, []).append(name)

    def _modality_register(self, plugin: str) -> Callable[[Modality], None]:
        def register(modality: Modality) -> None:
            from .modality import Modality  # torch loads when a modality is registered, not at import

            if not isinstance(modality, Modality):
                raise RegistrationError(f"register_modalities from {plugin!r} passed {modality!r}: "
                                        "pass an instance of anymal_host.Modality")
            name = getattr(modality, "name", None)
            if not isinstance(name, str) or not name.isidentifier():
                raise RegistrationError(f"modality from {plugin!r} has name {name!r}: use a short identifier like 'imu'")
            self._record(self._modalities, "modality", name, modality, plugin)
        return register

    def _projector_register(self, plugin: str) -> Callable[[str, Callable[..., Any]], None]:
        def register(name: str, factory: Callable[..., Any]) -> None:
            if not isinstance(name, str) or not name:
                raise RegistrationError(f"register_projectors from {plugin!r} passed name {name!r}: use a non-empty string")
            if not callable(factory):
                raise RegistrationError(f"projector {name!r} from {plugin!r}: factory {factory!r} is not callable")
            self._record(self._projectors, "projector", name, factory, plugin)
        return register

    def _dataset_register(self, plugin: str) -> Callable[[DatasetSpec], None]:
        def register(spec: DatasetSpec) -> None:
            from .modality import DatasetSpec

            if not isinstance(spec, DatasetSpec):
                raise RegistrationError(f"register_datasets from {plugin!r} passed {spec!r}: pass an anymal_host.DatasetSpec")
            if ":" not in spec.name:
                raise RegistrationError(f"data set name {spec.name!r} from {plugin!r} must read 'modality:name', e.g. 'imu:hapt'")
            if spec.name.split(":", 1)[0] != spec.modality:
                raise RegistrationError(f"data set {spec.name!r} from {plugin!r} is of modality {spec.modality!r}: name it "
                                        f"'{spec.modality}:{spec.name.split(':', 1)[1]}'")
            self._record(self._datasets, "dataset", spec.name, spec, plugin)
        return register

    def _adapter_register(self, plugin: str) -> Callable[[str, Any], None]:
        def register(name: str, path: str | os.PathLike[str]) -> None:
            folder = Path(path)
            from adapters_hub.layout import CONFIG_NAME

            if not (folder / CONFIG_NAME).is_file():
                raise RegistrationError(f"bundled adapter {name!r} from {plugin!r}: {folder} has no anymal_adapter.json; "
                                        "register the folder of a saved adapter package")
            self._record(self._adapters, "adapter", name, folder, plugin)
        return register

    # ----- queries --------------------------------------------------------------------------------------

    @property
    def modalities(self) -> dict[str, Modality]:
        self._collect()
        return {k: e.value for k, e in self._modalities.items()}

    @property
    def projectors(self) -> dict[str, Callable[..., Any]]:
        self._collect()
        return {k: e.value for k, e in self._projectors.items()}

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        self._collect()
        return {k: e.value for k, e in self._datasets.items()}

    @property
    def bundled_adapters(self) -> dict[str, Path]:
        self._collect()
        return {k: e.value for k, e in self._adapters.items()}

    def provider(self, kind: str, name: str) -> str | None:
        """Which plugin registered ``name`` of ``kind`` (modality, projector, dataset, adapter)."""
        self._collect()
        table = {"modality": self._modalities, "projector": self._projectors,
                 "dataset": self._datasets, "adapter": self._adapters}[kind]
        entry = table.get(name)
        return entry.plugin if entry else None

    def plugin_infos(self) -> list[PluginInfo]:
        self._collect()
        return list(self.plugins.values())

    def modality(self, name: str) -> Modality:
        modalities = self.modalities
        if name not in modalities:
            known = ", ".join(sorted(modalities)) or "none"
            raise UnknownModalityError(
                f"unknown modality {name!r} (installed: {known}). Install its plugin, "
                f"e.g. `pip install {_plugin_package_name(name)}`, and check `anymal plugins` for plugins that failed "
                f"to load"
            )
        return modalities[name]

    def projector_factory(self, name: str) -> Callable[..., Any]:
        projectors = self.projectors
        if name not in projectors:
            raise RegistrationError(f"unknown projector type {name!r} (registered: {', '.join(sorted(projectors))}); "
                                    "install the plugin that provides it")
        return projectors[name]

    def dataset(self, name: str) -> DatasetSpec:
        datasets = self.datasets
        if name not in datasets:
            raise UnknownModalityError(f"unknown data set {name!r} (registered: {', '.join(sorted(datasets)) or 'none'}); "
                                       "install the plugin of its modality")
        return datasets[name]

    def modality_for(self, path: str | os.PathLike[str] | None = None, media_type: str | None = None) -> Modality:
        """The modality that accepts a file (by extension) or a media type."""
        matches = [m for m in self.modalities.values() if m.accepts(path, media_type)]
        if len(matches) == 1:
            return matches[0]
        what = f"media type {media_type!r}" if media_type else f"file {str(path)!r}"
        if not matches:
            hint = _plugin_hint(path, media_type)
            accepted = "; ".join(f"{m.name}: {' '.join(m.file_extensions)}" for m in self.modalities.values()) or "no modality plugins are installed"
            raise UnsupportedAttachmentError(
                f"no installed modality accepts {what} ({accepted}). "
                + (f"Install {hint}, " if hint else "Install the plugin for this kind of signal, ")
                + "or name the modality explicitly"
            )
        names = ", ".join(m.name for m in matches)
        raise UnsupportedAttachmentError(f"{what} is accepted by several modalities ({names}): name the one to use")


def _plugin_package_name(modality: str) -> str:
    from adapters_hub.checks import plugin_package_name  # the one place the naming convention lives

    return plugin_package_name(modality)


def _plugin_hint(path: str | os.PathLike[str] | None, media_type: str | None) -> str:
    """For a file no plugin accepts: the plugin its media family would be in, by the naming convention
    (``photo.png`` is ``image/png`` -> anymal-plugin-image). The host knows no plugin by name."""
    import mimetypes

    kind = media_type or (mimetypes.guess_type(str(path))[0] if path else None) or ""
    family = kind.split("/")[0]
    if family in ("image", "audio", "video"):
        package = _plugin_package_name(family)
        return f"{package} (pip install {package})"
    return ""


def _hook_names(pm: pluggy.PluginManager, plugin: Any) -> list[Any]:
    callers = pm.get_hookcallers(plugin) or []
    return list(callers)


def _module_version(plugin: Any) -> str | None:
    if isinstance(plugin, ModuleType):
        top = plugin.__name__.split(".")[0]
        try:
            return importlib.metadata.version(top.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            return getattr(plugin, "__version__", None)
    return None


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry.from_environment()
        return _registry


def reset_registry() -> None:
    """Forget the process-wide registry (tests, or after installing a plugin in a running process)."""
    global _registry
    with _registry_lock:
        _registry = None
