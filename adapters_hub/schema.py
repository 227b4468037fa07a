"""Versioning of ``anymal_adapter.json``: migrations from older schemas, refusal of newer ones, and keys that a
newer anymal added (kept additive: they do not bump the schema, so an older anymal loads them with a warning)."""

from __future__ import annotations

import json
import warnings
from dataclasses import fields
from importlib import metadata
from typing import Any, Callable

from .config import SCHEMA_VERSION, AdapterConfig, EncoderRef, LLMRef, ProjectorSpec
from .errors import ConfigFromNewerVersionWarning, PackageCorruptError, SchemaVersionError
from .validate import validate_config_data

__all__ = ["ANYMAL_VERSION", "MIGRATIONS", "MIN_SCHEMA_VERSION", "parse_config", "config_to_json"]


def _anymal_version() -> str:
    try:
        return metadata.version("anymal")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.1.0"


#: The anymal version writing packages now (recorded in every config it saves).
ANYMAL_VERSION = _anymal_version()


def _migrate_0_to_1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 (pre-release layout): the token count was ``num_query_tokens`` and the projector type was
    ``projector.kind``. Schema 1 renamed them to ``num_tokens`` and ``projector.type``."""
    data = dict(data)
    if "num_query_tokens" in data:
        data["num_tokens"] = data.pop("num_query_tokens")
    projector = data.get("projector")
    if isinstance(projector, dict) and "kind" in projector:  # anything else is left for validation to name
        projector = dict(projector)
        projector["type"] = projector.pop("kind")
        data["projector"] = projector
    data["schema_version"] = 1
    return data


#: ``{old_version: function(data) -> data at old_version + 1}``; applied in sequence up to SCHEMA_VERSION.
#: An incompatible change bumps SCHEMA_VERSION and adds one entry here, so every old package stays loadable.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _migrate_0_to_1}

#: The oldest schema a migration path exists for; anything older is refused.
MIN_SCHEMA_VERSION = min(MIGRATIONS, default=SCHEMA_VERSION)

_NESTED = {"encoder": EncoderRef, "projector": ProjectorSpec, "llm": LLMRef}


def _schema_version(data: dict[str, Any], source: str) -> int:
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SchemaVersionError(
            f"{source}: 'schema_version' is {version!r}, not an integer: this is not an anymal adapter config, "
            f"or it was edited by hand; re-export the adapter with anymal's save_adapter_package")
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{source} uses schema version {version} (written by anymal {data.get('anymal_version', '?')}), but this "
            f"anymal ({ANYMAL_VERSION}) reads schema versions up to {SCHEMA_VERSION}: upgrade anymal "
            f"(pip install -U anymal) to load it")
    if version < MIN_SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{source} uses schema version {version}, older than any this anymal can migrate "
            f"(oldest: {MIN_SCHEMA_VERSION}): re-export the adapter with a current anymal, or load it with the "
            f"anymal version that wrote it ({data.get('anymal_version', 'unknown')})")
    return version


def _drop_unknown(data: dict[str, Any], cls: type, prefix: str, unknown: list[str]) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            unknown.append(prefix + key)
    return {k: v for k, v in data.items() if k in known}


def parse_config(data: Any, source: str = "anymal_adapter.json") -> AdapterConfig:
    """A parsed ``anymal_adapter.json`` -> :class:`AdapterConfig`.

    Migrates older schemas through :data:`MIGRATIONS`, refuses newer ones ("upgrade anymal"), and ignores keys
    this anymal does not know with a :class:`ConfigFromNewerVersionWarning` naming the version that wrote them.
    """
    if not isinstance(data, dict):
        raise PackageCorruptError(f"{source} holds a JSON {type(data).__name__}, not an object: it is not an anymal "
                                  f"adapter config; re-export the adapter with save_adapter_package")
    version = _schema_version(data, source)
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = data["schema_version"]
    validate_config_data(data, source)
    unknown: list[str] = []
    clean = _drop_unknown(data, AdapterConfig, "", unknown)
    for key, cls in _NESTED.items():
        clean[key] = cls(**_drop_unknown(clean[key], cls, key + ".", unknown))
    if unknown:
        warnings.warn(
            f"{source} of adapter {clean.get('name')!r} was written by anymal {data.get('anymal_version', '?')} and "
            f"has keys this anymal ({ANYMAL_VERSION}) does not know: {', '.join(sorted(unknown))}. They are ignored; "
            f"upgrade anymal (pip install -U anymal) to use them.", ConfigFromNewerVersionWarning, stacklevel=3)
    return AdapterConfig(**clean)


def config_to_json(config: AdapterConfig) -> str:
    """The canonical text of ``anymal_adapter.json`` (sorted keys, so equal configs hash equally)."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
