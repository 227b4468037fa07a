"""Errors and warnings of the adapter package format and the hubs.

Every error is an :class:`AdapterPackageError` (a ``ValueError``), so a caller can catch one type for "this
package cannot be used"; the subclasses let the host and the tests tell the reasons apart. Every message says
what is wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AdapterPackageError",
    "PackageFileMissingError",
    "PackageCorruptError",
    "UnsafePackageError",
    "PackageTooLargeError",
    "SchemaVersionError",
    "ModalityPluginMissingError",
    "HiddenSizeMismatchError",
    "FingerprintMismatchError",
    "TensorMismatchError",
    "InvalidRefError",
    "HubError",
    "RepoNotFoundError",
    "AdapterPackageWarning",
    "ConfigFromNewerVersionWarning",
    "ForcedLoadWarning",
    "HubOfflineWarning",
    "HubUnreachableError",
    "HubServerError",
    "HubFeatureUnsupportedError",
]


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about hostile input: a config or a header can
    hold strings of megabytes or integers past Python's digit limit (whose repr raises)."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's digit limit
        return "a number too large to print"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class AdapterPackageError(ValueError):
    """Base class: an adapter package (or a hub holding it) cannot be used as it is."""


class PackageFileMissingError(AdapterPackageError, FileNotFoundError):
    """A file the package needs (``anymal_adapter.json``, ``adapter.safetensors``, ``lora/...``) is absent."""


class PackageCorruptError(AdapterPackageError):
    """A file is truncated, is not what its name says (invalid JSON, not safetensors), or holds NaN/inf."""


class UnsafePackageError(AdapterPackageError):
    """The package holds something that is never read: pickle files, names that escape the folder, links."""


class PackageTooLargeError(AdapterPackageError):
    """A file or header is larger than the configured limit (protects against memory exhaustion)."""


class SchemaVersionError(AdapterPackageError):
    """The package's ``schema_version`` is newer than this anymal, or too old to migrate."""


class ModalityPluginMissingError(AdapterPackageError):
    """The adapter's modality has no installed plugin."""


class HiddenSizeMismatchError(AdapterPackageError):
    """The adapter projects into a different hidden size than the host LLM's."""


class FingerprintMismatchError(AdapterPackageError):
    """The adapter was trained against a different LLM embedding space (different fingerprint)."""


class TensorMismatchError(AdapterPackageError):
    """``adapter.safetensors`` holds tensor names, shapes or dtypes other than the config implies."""


class InvalidRefError(AdapterPackageError):
    """A ref (``org/name@rev``, ``hf://...``, ``file://...``, a path) that cannot be parsed or resolved."""


class HubError(AdapterPackageError):
    """A hub could not publish or serve a package."""


class RepoNotFoundError(HubError, LookupError):
    """No such repo or revision on the hub."""


class AdapterPackageWarning(UserWarning):
    """Base class of the warnings this package emits."""


class ConfigFromNewerVersionWarning(AdapterPackageWarning):
    """``anymal_adapter.json`` has keys this anymal does not know (written by a newer anymal); they are ignored."""


class ForcedLoadWarning(AdapterPackageWarning):
    """A compatibility check failed and was overridden with ``force=True``."""


class HubOfflineWarning(AdapterPackageWarning):
    """The hub could not be reached and a cached copy is used instead."""


class HubUnreachableError(HubError, ConnectionError):
    """The hub did not answer at all (connection refused, timeout, DNS, offline mode)."""


class HubServerError(HubError):
    """The hub answered with a server error (5xx): the server is up but failing; retrying later may work."""


class HubFeatureUnsupportedError(HubError):
    """The hub server does not offer what was asked (no model listing, no commit history) or answers it in a
    form that is not the Hugging Face Hub API; other operations (pull by ref, info) may still work."""
