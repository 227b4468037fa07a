"""anymal-plugin-image: images as a sense for anymal, through a frozen timm encoder (EfficientNet-Lite0 by default).

The host finds it through the ``anymal`` entry point ``image = "anymal_plugin_image.plugin"``. Importing the
package stays cheap (``anymal --help`` imports every plugin): the modality, and with it numpy, torch and Pillow,
loads on first use of one of the names below.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXAMPLES_DIR", "ImageModality", "example_path"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import modality

        return getattr(modality, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
