"""anymal-plugin-image: images as a sense for anymal, through a frozen timm encoder (EfficientNet-Lite0 by default).

The host finds it through the ``anymal`` entry point ``image = "anymal_plugin_image.plugin"``. Importing the
package stays cheap (``anymal --help`` imports every plugin): each name below loads its module, and with it
numpy, torch, Pillow or timm, on first use.

The names below are the plugin's public API, the one other plugins build on (the video plugin runs every frame
through :class:`ImageModality` ``.preprocess`` and :func:`build_encoder`, and draws its clips with
:func:`draw_scene`); they keep working across minor versions. Everything else is internal.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EXAMPLES_DIR", "IMAGE_SIZE", "ImageModality", "example_path", "data_config", "load_image",
           "TimmImageEncoder", "build_encoder", "ENCODER_NAME", "Scene", "Shape", "draw_scene", "random_scene",
           "SHAPES", "COLORS"]

__version__ = "0.1.0"

# Which module holds each public name: imported on first use, not when the host imports the plugin.
_HOMES = {
    "EXAMPLES_DIR": "modality", "IMAGE_SIZE": "modality", "ImageModality": "modality", "example_path": "modality",
    "data_config": "modality", "load_image": "images", "TimmImageEncoder": "encoder", "build_encoder": "encoder",
    "ENCODER_NAME": "encoder", "Scene": "data", "Shape": "data", "draw_scene": "data", "random_scene": "data",
    "SHAPES": "labels", "COLORS": "labels",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
