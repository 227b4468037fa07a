"""anymal-plugin-audio: sound clips (speech, tones, beeps) through Whisper tiny.en's encoder, up to 30 s at 16 kHz.

The host finds it through the ``anymal`` entry point ``audio = "anymal_plugin_audio.plugin"``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["EXAMPLES_DIR", "AudioModality", "example_path"]


def __getattr__(name: str) -> Any:
    # The modality module imports torch: loaded on first use, so that importing the plugin (as every `anymal`
    # command does, to list plugin commands) stays cheap.
    if name in __all__:
        return getattr(import_module(".modality", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__version__ = "0.1.0"
