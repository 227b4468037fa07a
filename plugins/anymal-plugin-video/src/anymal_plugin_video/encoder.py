"""``FrameEncoder``: the image plugin's frozen timm encoder on every frame, each frame's features tagged with
where in the clip it stands.

AnyMAL encodes sampled frames with its image encoder and resamples them. Here every frame goes through the
image plugin's encoder (its public :func:`anymal_plugin_image.build_encoder`), giving ``cells`` feature steps a
frame (7 x 7 for EfficientNet-Lite0); the steps of all frames are concatenated in time order, and each step gets
a sinusoidal code of its frame's index appended, so that a projector that attends over the steps as a set (the
Perceiver resampler) can still tell which frame came first, and with it which way an object moves. The code
has no weights: a frozen encoder stays frozen, and the host's feature cache still runs it once per clip.

Imported only when an adapter is built (``VideoModality.build_encoder``), so registering the plugin stays cheap.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from anymal_host import Encoder

__all__ = ["FrameEncoder", "ENCODER_NAME", "DEFAULT_TIME_CHANNELS", "build_encoder", "frame_code"]

#: The name adapter packages record in ``encoder.name``.
ENCODER_NAME = "frames"
#: Width of the frame-index code appended to every feature step (sines and cosines, half each).
DEFAULT_TIME_CHANNELS = 32
# Options passed on to the image plugin's encoder, as it takes them.
_IMAGE_OPTIONS = ("model", "weights", "trainable", "stage")


def frame_code(frames: int, channels: int, *, scale: float = 1.0) -> torch.Tensor:
    """``[frames, channels]``: sines and cosines of the frame index at geometric periods from 2 to 64 frames,
    times ``scale``. Nearby frames get similar codes and order is recoverable from them."""
    half = channels // 2
    index = torch.arange(frames, dtype=torch.float32).unsqueeze(1)
    periods = torch.logspace(math.log10(2.0), math.log10(64.0), half)
    angles = 2 * math.pi * index / periods
    return torch.cat([angles.sin(), angles.cos()], dim=1) * scale


class FrameEncoder(Encoder):
    """``[B, T, 3, H, W]`` frames -> ``[B, T * cells, D + time_channels]`` features, ``T * cells`` mask.

    ``image_encoder`` is the image plugin's encoder (frozen unless its config says ``trainable``). The frame
    code is multiplied by a fixed ``code_scale`` rather than by a statistic of the batch, which would make an
    item's features depend on what it is batched with (EfficientNet-Lite0's final features are ReLU6 outputs,
    mostly in [0, 2], the code's range at scale 1).
    """

    def __init__(self, image_encoder: Encoder, *, time_channels: int = DEFAULT_TIME_CHANNELS,
                 code_scale: float = 1.0) -> None:
        super().__init__()
        self.image = image_encoder
        self.time_channels = time_channels
        self.code_scale = code_scale
        self.feature_dim = int(image_encoder.feature_dim) + time_channels
        self.pretrained_weights = getattr(image_encoder, "pretrained_weights", None)

    def forward(self, signals: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if signals.dim() != 5 or signals.shape[2] != 3:
            raise ValueError(f"video encoder expects frames [B, T, 3, H, W], got {tuple(signals.shape)}: load and "
                             "preprocess the clip with the video modality")
        b, t = signals.shape[:2]
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=signals.device)
        features, feature_mask = self.image(signals, mask)  # [B, T * cells, D], frames in order
        cells = features.shape[1] // t
        code = frame_code(t, self.time_channels, scale=self.code_scale).to(features)  # [T, C]
        code = code.repeat_interleave(cells, dim=0).unsqueeze(0).expand(b, -1, -1)  # [B, T * cells, C]
        code = code * feature_mask.unsqueeze(-1).to(code.dtype)  # padded frames stay exactly zero
        return torch.cat([features, code], dim=-1), feature_mask


def build_encoder(config: Mapping[str, Any]) -> FrameEncoder:
    """The encoder an adapter's ``encoder`` section describes: ``{"name": "frames", "model": ..., "weights":
    ..., "trainable": false, "stage": null, "time_channels": 32}``. ``model``, ``weights``, ``trainable`` and
    ``stage`` go to the image plugin's encoder as they are; unknown names and options raise ``ValueError``."""
    name = config.get("name")
    if name != ENCODER_NAME:
        raise ValueError(f"unknown video encoder {name!r}: this plugin provides {ENCODER_NAME!r} (the image "
                         "plugin's timm encoder on every frame; --encoder-option model=... picks the timm model)")
    unknown = sorted(set(config) - {"name", "time_channels", *_IMAGE_OPTIONS})
    if unknown:
        raise ValueError(f"video encoder 'frames' has no option(s) {', '.join(unknown)}: it takes "
                         f"{', '.join(_IMAGE_OPTIONS)} (passed to the image encoder) and time_channels")
    channels = config.get("time_channels", DEFAULT_TIME_CHANNELS)
    if isinstance(channels, bool) or not isinstance(channels, int) or not 0 <= channels <= 256 or channels % 2:
        raise ValueError(f"video encoder: time_channels={channels!r}: use an even whole number from 0 to 256")
    from anymal_plugin_image import ENCODER_NAME as IMAGE_ENCODER, build_encoder as build_image_encoder

    image_config = {"name": IMAGE_ENCODER, **{k: config[k] for k in _IMAGE_OPTIONS if k in config}}
    return FrameEncoder(build_image_encoder(image_config), time_channels=channels)
