"""anymal: give a fixed, pretrained LLM new senses.

A plugin needs only ``from anymal_host import hookimpl`` (plus :class:`Modality` and friends to implement a
modality). Everything heavy (torch models, weights) loads on first use, never at import.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .errors import (
    AdapterNotFoundError,
    AnymalError,
    InvalidAdapterNameError,
    InvalidSignalError,
    LLMLoadError,
    PluginError,
    RegistrationError,
    UnknownModalityError,
    UnsupportedAttachmentError,
)
from .hookspecs import hookimpl
from .plugin_helpers import lazy_builder, register_bundled_adapters
from .safety import ContentRefusedError, Refusal

try:
    __version__ = version("anymal")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# Names whose modules import torch (or transformers): loaded on first access, so that `from anymal_host import
# hookimpl` and `anymal --help` cost a plugin or a user no torch import (PEP 562 module __getattr__).
_LAZY = {
    "AnymalHost": "host", "Answer": "host", "LLM": "llm", "LLMOptions": "llm", "Modality": "modality",
    "SignalSpec": "modality", "Encoder": "modality", "DatasetSpec": "modality", "pad_sequences": "modality",
    "ModalityAdapter": "adapter",
    "Attachment": "prompt", "EmbeddedBatch": "prompt", "Registry": "plugins", "get_registry": "plugins",
}

if TYPE_CHECKING:
    from .adapter import ModalityAdapter
    from .host import AnymalHost, Answer
    from .llm import LLM, LLMOptions
    from .modality import DatasetSpec, Encoder, Modality, SignalSpec, pad_sequences
    from .plugins import Registry, get_registry
    from .prompt import Attachment, EmbeddedBatch


# Submodules that `import anymal_host; anymal_host.modality...` reached while __init__ imported them eagerly.
_SUBMODULES = frozenset({"adapter", "host", "llm", "modality", "plugins", "prompt", "projectors", "loading",
                         "training", "evaluation", "testing", "paths", "default_llm", "sources", "cli",
                         "plugin_helpers", "safety"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later accesses skip this function
        return value
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'anymal_host' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "hookimpl",
    "lazy_builder",
    "register_bundled_adapters",
    "AnymalHost",
    "Answer",
    "ContentRefusedError",
    "Refusal",
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
    "InvalidAdapterNameError",
    "InvalidSignalError",
    "LLMLoadError",
    "PluginError",
    "RegistrationError",
    "UnknownModalityError",
    "UnsupportedAttachmentError",
]
