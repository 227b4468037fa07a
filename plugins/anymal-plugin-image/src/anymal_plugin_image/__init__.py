"""anymal-plugin-image: Images (PNG, JPEG, WebP, GIF, BMP, TIFF) through a frozen timm EfficientNet-Lite0 encoder

The host finds it through the ``anymal`` entry point ``image = "anymal_plugin_image.plugin"``.
"""

from __future__ import annotations

from .modality import EXAMPLES_DIR, ImageModality, example_path

__all__ = ["EXAMPLES_DIR", "ImageModality", "example_path"]

__version__ = "0.1.0"
