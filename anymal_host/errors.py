"""Errors a user can meet. Each message says what is wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "AnymalError",
    "PluginError",
    "RegistrationError",
    "UnknownModalityError",
    "UnsupportedAttachmentError",
    "InvalidSignalError",
    "LLMLoadError",
    "AdapterNotFoundError",
    "InvalidAdapterNameError",
    "TrainConfigError",
]


class AnymalError(Exception):
    """Base class of every error anymal raises on purpose."""


class PluginError(AnymalError):
    """A plugin failed to import or to register."""


class RegistrationError(AnymalError, ValueError):
    """A plugin passed something invalid to a ``register`` callback, or a name that is already taken."""


class UnknownModalityError(AnymalError, KeyError):
    """A modality name that no installed plugin registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnsupportedAttachmentError(AnymalError, ValueError):
    """An attachment whose file type or media type no installed modality accepts."""


class InvalidSignalError(AnymalError, ValueError):
    """A signal (file, bytes or array) that a modality cannot accept as it is."""


class LLMLoadError(AnymalError, OSError):
    """The host LLM could not be found or loaded."""


class AdapterNotFoundError(AnymalError, LookupError):
    """No adapter is loaded (or bundled) for a modality or name that a request needs."""


class InvalidAdapterNameError(AnymalError, ValueError):
    """An adapter name that is empty, only spaces, or holds control characters."""


class MissingExtraError(AnymalError, ImportError):
    """An optional dependency of this job is not installed; the message names the ``pip install`` of its extra."""


class TrainConfigError(AnymalError, ValueError):
    """Training options that contradict each other or the data set (refused before anything is built)."""
