"""``FrameEncoder``: the image plugin's frozen timm encoder on every frame, each feature step tagged with when
and where it is.

AnyMAL encodes sampled frames with its image encoder and resamples them. Here every frame goes through the
image plugin's encoder (its public :func:`anymal_plugin_image.build_encoder`), giving ``cells`` feature steps a
frame (7 x 7 for EfficientNet-Lite0); the steps of all frames are concatenated in time order, and each step gets
two sinusoidal codes appended: its frame's index, and its cell's row and column. A projector that attends over
the steps as a set (the Perceiver resampler) can then compare where an object is in one frame with where it is
in a later one, which is what a direction is. Learned per-step positions alone (the resampler has them) have to
learn 8 x 49 separate vectors from the data; the fixed codes give every step its frame and place from the
start.

Learned attention still has to find the moving object among the still ones before it can compare places, and a
first adapter trained on those codes alone answered directions from the shape it saw (2% on held-out
shape-direction pairs). So a third, weightless code tracks what changes (``motion``, on by default): each cell's
features are compared with the same cell's median over the clip (the still background and still shapes), the
per-frame centroid of that change is where the changing thing is in that frame, and the least-squares slope of
the centroids over time is its velocity. Every step gets ``MOTION_CHANNELS`` values: its cell's change (0 to 1),
its frame's centroid (x, y in -1 to 1) and the clip's velocity (x, y; right and down positive) with its four
signed parts (right, left, down, up), centroid and velocity scaled by ``MOTION_SCALE``. The velocity
alone names the direction of 97% of the ``video:directions`` test clips and 93% of the held-out ones (measured
on the first 100 and 40 clips); the adapter learns to read it beside the appearance features.

The codes have no weights: a frozen encoder stays frozen, and the host's feature cache still runs it once per
clip.

Imported only when an adapter is built (``VideoModality.build_encoder``), so registering the plugin stays cheap.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from anymal_host import Encoder

__all__ = ["FrameEncoder", "ENCODER_NAME", "DEFAULT_TIME_CHANNELS", "DEFAULT_SPACE_CHANNELS", "MOTION_CHANNELS",
           "MOTION_FIELDS", "MOTION_SCALE",
           "build_encoder", "frame_code", "grid_code", "motion_code"]

#: The name adapter packages record in ``encoder.name``.
ENCODER_NAME = "frames"
#: Width of the frame-index code appended to every feature step (sines and cosines, half each).
DEFAULT_TIME_CHANNELS = 32
#: Width of the row-and-column code appended to every feature step (a quarter each: sin and cos of row, of column).
DEFAULT_SPACE_CHANNELS = 32
#: The motion code's channels (``motion=True``), in order: the cell's change; its frame's centroid of change
#: (x, y); the clip's velocity (x, y; right and down positive); and the velocity's four signed parts (right,
#: left, down, up: each the velocity along it when positive, else 0).
MOTION_FIELDS = ("change", "x", "y", "vx", "vy", "right", "left", "down", "up")
MOTION_CHANNELS = len(MOTION_FIELDS)
#: Centroids and velocities are multiplied by this: at 1 they are a few tenths, beside 1,280 appearance
#: features mostly in [0, 2], and a first adapter trained at that scale learned directions from the shapes
#: instead (see the README).
MOTION_SCALE = 4.0
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


def grid_code(side: int, channels: int) -> torch.Tensor:
    """``[side * side, channels]``, row-major: for the row and the column of each cell, sines and cosines of its
    index at ``channels // 4`` geometric periods from 2 to ``4 * side`` cells (the longest spans the grid
    without wrapping, so left and right differ; the shortest tells neighbours apart)."""
    quarter = channels // 4
    if quarter == 0 or side < 1:
        return torch.zeros(side * side, channels)
    index = torch.arange(side, dtype=torch.float32).unsqueeze(1)
    periods = torch.logspace(math.log10(2.0), math.log10(4.0 * side), quarter)
    angles = 2 * math.pi * index / periods  # [side, quarter]
    axis = torch.cat([angles.sin(), angles.cos()], dim=1)  # [side, 2 * quarter]
    rows = axis.repeat_interleave(side, dim=0)  # cell (r, c) -> row r
    cols = axis.repeat(side, 1)  # cell (r, c) -> column c
    code = torch.cat([rows, cols], dim=1)
    return torch.nn.functional.pad(code, (0, channels - code.shape[1]))


def motion_code(features: torch.Tensor, side: int) -> torch.Tensor:
    """``[T, side * side, D]`` features of one clip's valid frames -> ``[T, side * side, MOTION_CHANNELS]``.

    The change of a cell is the distance of its features from the cell's median over the clip, divided by the
    clip's largest change (so 0 to 1, and a clip's code depends on that clip alone, never on its batch). A
    frame's centroid is the change-weighted mean of the cell positions (-1 left/top to 1 right/bottom); the
    velocity is the slope of the centroids against time running from -1 (first frame) to 1 (last), so an object
    crossing half the frame reads about 0.5; then its four signed parts. Centroids and velocities are scaled by
    :data:`MOTION_SCALE`; channels in :data:`MOTION_FIELDS` order. One frame, or a clip where nothing changes,
    gives zeros.
    """
    frames, cells, _ = features.shape
    code = features.new_zeros(frames, cells, MOTION_CHANNELS)
    if frames < 2:
        return code
    change = (features - features.median(dim=0, keepdim=True).values).norm(dim=-1)  # [T, cells]
    peak = change.max()
    if not torch.isfinite(peak) or peak <= 0:
        return code
    change = change / peak
    axis = torch.linspace(-1.0, 1.0, side, dtype=features.dtype, device=features.device)
    xs, ys = axis.repeat(side), axis.repeat_interleave(side)  # cell (r, c) -> column c, row r
    weights = change / change.sum(dim=1, keepdim=True).clamp_min(1e-6)
    centroid = torch.stack([weights @ xs, weights @ ys], dim=1)  # [T, 2]
    time = torch.linspace(-1.0, 1.0, frames, dtype=features.dtype, device=features.device)
    velocity = (time @ centroid) / (time @ time)  # [2]
    code[..., 0] = change
    code[..., 1:3] = MOTION_SCALE * centroid.unsqueeze(1)
    code[..., 3:5] = MOTION_SCALE * velocity
    signed = torch.stack([velocity[0], -velocity[0], velocity[1], -velocity[1]]).clamp_min(0)
    code[..., 5:9] = MOTION_SCALE * signed
    return code


class FrameEncoder(Encoder):
    """``[B, T, 3, H, W]`` frames -> ``[B, T * cells, D + time_channels + space_channels]`` features, and the
    ``[B, T * cells]`` mask (``+ MOTION_CHANNELS`` with ``motion``).

    ``image_encoder`` is the image plugin's encoder (frozen unless its config says ``trainable``). The frame
    code is multiplied by a fixed ``code_scale`` rather than by a statistic of the batch, which would make an
    item's features depend on what it is batched with (EfficientNet-Lite0's final features are ReLU6 outputs,
    mostly in [0, 2], the code's range at scale 1).
    """

    def __init__(self, image_encoder: Encoder, *, time_channels: int = DEFAULT_TIME_CHANNELS,
                 space_channels: int = DEFAULT_SPACE_CHANNELS, motion: bool = True, code_scale: float = 1.0) -> None:
        super().__init__()
        self.image = image_encoder
        self.time_channels = time_channels
        self.space_channels = space_channels
        self.motion = motion
        self.code_scale = code_scale
        self.feature_dim = (int(image_encoder.feature_dim) + time_channels + space_channels
                            + (MOTION_CHANNELS if motion else 0))
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
        when = frame_code(t, self.time_channels, scale=self.code_scale).repeat_interleave(cells, dim=0)
        side = math.isqrt(cells)
        # a square grid of cells (a CNN's map); tokens that are not one (a ViT's, with a class token) get no
        # place code
        square = side * side == cells
        where = grid_code(side, self.space_channels) if square else torch.zeros(cells, self.space_channels)
        code = torch.cat([when, where.repeat(t, 1) * self.code_scale], dim=1).to(features)  # [T * cells, C]
        code = code.unsqueeze(0).expand(b, -1, -1)
        if self.motion:
            code = torch.cat([code, self._motion(features, mask, t, side if square else 0)], dim=-1)
        code = code * feature_mask.unsqueeze(-1).to(features.dtype)  # padding: 0
        return torch.cat([features, code], dim=-1), feature_mask

    def _motion(self, features: torch.Tensor, mask: torch.Tensor, frames: int, side: int) -> torch.Tensor:
        """The motion code of each clip of the batch over its own valid frames (the first ``mask.sum()``);
        zeros without a square grid of cells."""
        b, steps, _ = features.shape
        code = features.new_zeros(b, steps, MOTION_CHANNELS)
        if side == 0:
            return code
        cells = side * side
        per_frame = features.detach().reshape(b, frames, cells, -1)
        for i in range(b):
            valid = int(mask[i].sum())
            code[i, :valid * cells] = motion_code(per_frame[i, :valid], side).reshape(valid * cells, -1)
        return code


def build_encoder(config: Mapping[str, Any]) -> FrameEncoder:
    """The encoder an adapter's ``encoder`` section describes: ``{"name": "frames", "model": ..., "weights":
    ..., "trainable": false, "stage": null, "time_channels": 32, "space_channels": 32, "motion": true}``. ``model``,
    ``weights``, ``trainable`` and ``stage`` go to the image plugin's encoder as they are; unknown names and
    options raise ``ValueError``."""
    name = config.get("name")
    if name != ENCODER_NAME:
        raise ValueError(f"unknown video encoder {name!r}: this plugin provides {ENCODER_NAME!r} (the image "
                         "plugin's timm encoder on every frame; --encoder-option model=... picks the timm model)")
    unknown = sorted(set(config) - {"name", "time_channels", "space_channels", "motion", *_IMAGE_OPTIONS})
    if unknown:
        raise ValueError(f"video encoder 'frames' has no option(s) {', '.join(unknown)}: it takes "
                         f"{', '.join(_IMAGE_OPTIONS)} (passed to the image encoder), time_channels, space_channels and motion")
    widths = {}
    for option, default, step in (("time_channels", DEFAULT_TIME_CHANNELS, 2),
                                  ("space_channels", DEFAULT_SPACE_CHANNELS, 4)):
        value = config.get(option, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 256 or value % step:
            raise ValueError(f"video encoder: {option}={value!r}: use a whole number from 0 to 256 divisible by {step}")
        widths[option] = value
    motion = config.get("motion", True)
    if not isinstance(motion, bool):
        raise ValueError(f"video encoder: motion={motion!r}: use true or false")
    from anymal_plugin_image import ENCODER_NAME as IMAGE_ENCODER, build_encoder as build_image_encoder

    image_config = {"name": IMAGE_ENCODER, **{k: config[k] for k in _IMAGE_OPTIONS if k in config}}
    return FrameEncoder(build_image_encoder(image_config), motion=motion, **widths)
