"""anymal-plugin-imu: the wearable IMU (accelerometer + gyroscope) modality for anymal.

The host finds it through the ``anymal`` entry point (``anymal_plugin_imu.plugin``). The data set code
(``anymal_plugin_imu.hapt``) is imported only when the ``imu:hapt`` data set is built.
"""

from __future__ import annotations

from .captions import ACTIVITIES, CAPTION_TEMPLATES, activity_from_text, caption_for
from .modality import EXAMPLES_DIR, ImuModality, example_path
from .signals import CHANNEL_NAMES, SAMPLE_RATE, WINDOW, windows

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
