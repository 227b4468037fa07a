"""anymal-plugin-imu: the wearable IMU (accelerometer + gyroscope) modality for anymal.

The host finds it through the ``anymal`` entry point (``anymal_plugin_imu.plugin``). The data set code
(``anymal_plugin_imu.hapt``) is imported only when the ``imu:hapt`` data set is built.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .captions import ACTIVITIES, CAPTION_TEMPLATES, activity_from_text, caption_for

# numpy and torch load when these are first used, not when the host imports the plugin to list its commands.
_LAZY = {"EXAMPLES_DIR": "modality", "ImuModality": "modality", "example_path": "modality",
         "CHANNEL_NAMES": "signals", "SAMPLE_RATE": "signals", "WINDOW": "signals", "windows": "signals"}

if TYPE_CHECKING:
    from .modality import EXAMPLES_DIR, ImuModality, example_path
    from .signals import CHANNEL_NAMES, SAMPLE_RATE, WINDOW, windows


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'anymal_plugin_imu' has no attribute {name!r}")

__all__ = [
    "ACTIVITIES",
    "CAPTION_TEMPLATES",
    "CHANNEL_NAMES",
    "EXAMPLES_DIR",
    "ImuModality",
    "SAMPLE_RATE",
    "WINDOW",
    "activity_from_text",
    "caption_for",
    "example_path",
    "windows",
]

__version__ = "0.1.0"
