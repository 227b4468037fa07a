"""anymal-plugin-video: video as a sense for anymal. Clips are decoded with PyAV, sampled to a few frames, and
every frame goes through the image plugin's frozen encoder (its public API); a temporal Perceiver resampler
turns all frames' features into LLM tokens.

The host finds it through the ``anymal`` entry point ``video = "anymal_plugin_video.plugin"``. Importing the
package stays cheap (``anymal --help`` imports every plugin): the names below load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EXAMPLES_DIR", "VideoModality", "example_path", "read_video", "FrameEncoder", "build_encoder"]

__version__ = "0.1.0"

_HOMES = {"EXAMPLES_DIR": "modality", "VideoModality": "modality", "example_path": "modality",
          "read_video": "videos", "FrameEncoder": "encoder", "build_encoder": "encoder"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
