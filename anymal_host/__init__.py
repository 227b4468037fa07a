"""anymal: give a fixed, pretrained LLM new senses.

A plugin needs only ``from anymal_host import hookimpl`` (plus :class:`Modality` and friends to implement a
modality). Everything heavy (torch models, weights) loads on first use, never at import.
"""

from importlib.metadata import PackageNotFoundError, version

from .adapter import ModalityAdapter
from .errors import (
    AdapterNotFoundError,
    AnymalError,
    InvalidSignalError,
    LLMLoadError,
    PluginError,
    RegistrationError,
    UnknownModalityError,
    UnsupportedAttachmentError,
)
from .hookspecs import hookimpl
from .host import AnymalHost
from .llm import LLM, LLMOptions
from .modality import DatasetSpec, Encoder, Modality, SignalSpec, pad_sequences
from .plugins import Registry, get_registry
from .prompt import Attachment, EmbeddedBatch

try:
    __version__ = version("anymal")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "__version__",
    "hookimpl",
    "AnymalHost",
    "LLM",
    "LLMOptions",
    "Modality",
    "SignalSpec",
    "Encoder",
    "DatasetSpec",
    "pad_sequences",
    "ModalityAdapter",
    "Attachment",
    "EmbeddedBatch",
    "Registry",
    "get_registry",
    "AnymalError",
    "AdapterNotFoundError",
    "InvalidSignalError",
    "LLMLoadError",
    "PluginError",
    "RegistrationError",
    "UnknownModalityError",
    "UnsupportedAttachmentError",
]
