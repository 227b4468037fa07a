"""Two helpers for a plugin's entry-point module, so that registering stays cheap and every plugin bundles its
adapters the same way. Neither imports torch: ``anymal --help`` imports every plugin's entry point.

- :func:`lazy_builder`: a data set's ``build`` that imports the module doing the work on first call, not when
  the plugin registers the data set.
- :func:`register_bundled_adapters`: registers every adapter package a plugin ships in a folder of its wheel.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Callable

__all__ = ["lazy_builder", "register_bundled_adapters", "package_modality"]


def lazy_builder(module: str, function: str) -> Callable[..., Any]:
    """``module.function`` as a :class:`~anymal_host.DatasetSpec` ``build``, imported when a run first builds
    the data set. ``module`` is an absolute module name (``"anymal_plugin_image.data"``)."""

    def build(split: str, **options: Any) -> Any:
        return getattr(import_module(module), function)(split, **options)

    build.__name__ = build.__qualname__ = function
    build.__doc__ = f"{module}.{function}, imported on first use."
    return build


def register_bundled_adapters(register: Callable[..., None], folder: str | Path) -> None:
    """Call ``register(name, path)`` (the ``register_adapters`` hook's callback) for every adapter package in
    ``folder``: each subfolder that holds an ``anymal_adapter.json`` (what ``anymal train export`` writes),
    named after the subfolder, in name order. A missing folder registers nothing."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for config in sorted(folder.glob("*/anymal_adapter.json")):
        register(config.parent.name, config.parent)


def package_modality(folder: Path) -> str | None:
    """The modality of a bundled package, through the same safe reader as every package (a folder a plugin
    registered is still a folder on disk: a pipe named like its config must not block the host)."""
    from adapters_hub import AdapterPackageError, read_package_config

    try:
        return read_package_config(folder).modality
    except AdapterPackageError:
        return None
