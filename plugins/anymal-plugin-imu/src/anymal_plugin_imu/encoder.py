"""The IMU encoder: a strided 1-D convolution stem and a small transformer, in the spirit of IMU2CLIP.

A 128-sample window (2.56 s at 50 Hz) becomes 64 feature steps. Padding never changes the features of an
item's real steps: padded inputs are zeroed before every convolution (so a convolution sees exactly the
zeros its own padding would give a lone item), attention ignores padded keys, and the positional encoding is
a function of the position only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from anymal_host.modality import Encoder

__all__ = ["ENCODER_NAMES", "ImuEncoderConfig", "ImuConvTransformer", "build_encoder"]


@dataclass(frozen=True)
class ImuEncoderConfig:
    """Architecture of :class:`ImuConvTransformer` (the ``encoder.config`` of an adapter)."""

    # Registered encoder name (``imu-stats-mlp`` has its own config: :mod:`.stats_encoder`).
    name: str = "imu-conv-transformer"
    # Input channels: acc x/y/z + gyro x/y/z.
    in_channels: int = 6
    # Model width D (= feature_dim): every conv and transformer layer runs at this width.
    width: int = 128
    # Number of transformer encoder layers after the stem.
    depth: int = 2
    # Attention heads per layer; width must be divisible by it.
    heads: int = 4
    # Feed-forward width as a multiple of ``width`` (2 keeps the model ~0.4 M parameters).
    ff_mult: int = 2
    # Kernel of the first (stride-1) convolution: 5 samples = 0.1 s, enough to see one impact of a step.
    kernel_size: int = 5
    # Dropout inside the transformer layers (only active in train mode).
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.name != "imu-conv-transformer":
            raise ValueError(f"ImuEncoderConfig configures imu-conv-transformer, not {self.name!r}: build other "
                             f"encoders with build_encoder({{\"name\": ...}}) ({', '.join(ENCODER_NAMES)})")
        check_sizes(self, "IMU encoder", ("in_channels", "width", "depth", "heads", "ff_mult", "kernel_size"))
        if self.width % self.heads:
            raise ValueError(f"IMU encoder width {self.width} is not divisible by heads {self.heads}: "
                             "pick a width that is a multiple of the number of heads")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"IMU encoder kernel_size must be odd (same-length convolution), got {self.kernel_size}")


def check_sizes(config: Any, what: str, sizes: tuple[str, ...]) -> None:
    """The checks every IMU encoder config shares: each field of ``sizes`` at least 1, ``dropout`` in [0, 1)."""
    for field in sizes:
        if int(getattr(config, field)) < 1:
            raise ValueError(f"{what} {field} must be at least 1, got {getattr(config, field)!r}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{what} dropout must be in [0, 1), got {config.dropout}")


#: Encoder names ``build_encoder`` knows: the convolution + transformer over the samples, and the MLP over
#: window statistics (:mod:`.stats_encoder`).
ENCODER_NAMES = ("imu-conv-transformer", "imu-stats-mlp")


class ImuConvTransformer(Encoder):
    """``forward(signals [B, T, 6], mask [B, T]) -> (features [B, T // 2, width], feature_mask [B, T // 2])``."""

    #: Fewest input samples: the stride-2 convolution (kernel 4, padding 1) needs T + 2 >= 4 for one output
    #: step. ``signals.MIN_SAMPLES`` (what ``load`` accepts) is kept at least this by the test suite.
    MIN_LENGTH = 2
    #: The plugin ships no pretrained encoder: an IMU adapter package must carry its encoder weights.
    pretrained_weights = False

    def __init__(self, config: ImuEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or ImuEncoderConfig()
        c = self.config
        self.feature_dim = c.width
        self.conv_in = nn.Conv1d(c.in_channels, c.width, c.kernel_size, padding=c.kernel_size // 2)
        # kernel 4, stride 2, padding 1: T -> floor(T/2) steps (128 -> 64), each step seeing 4 samples.
        self.conv_down = nn.Conv1d(c.width, c.width, kernel_size=4, stride=2, padding=1)
        self.act = nn.GELU()
        layer = nn.TransformerEncoderLayer(c.width, c.heads, dim_feedforward=c.ff_mult * c.width,
                                           dropout=c.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        # enable_nested_tensor=False: the nested fast path returns padded steps differently and is not
        # bit-comparable with the dense path; we mask ourselves.
        self.transformer = nn.TransformerEncoder(layer, c.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.width)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """Feature steps for input lengths: ``floor((T + 2 - 4) / 2) + 1 = floor(T / 2)``."""
        return torch.div(lengths - 2, 2, rounding_mode="floor") + 1

    def forward(self, signals: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if signals.dim() != 3 or signals.shape[-1] != self.config.in_channels:
            raise ValueError(f"IMU encoder expects signals [B, T, {self.config.in_channels}], got "
                             f"{tuple(signals.shape)}: load and preprocess the recording with the imu modality")
        b, t, _ = signals.shape
        if t < self.MIN_LENGTH:
            raise ValueError(f"IMU encoder needs at least {self.MIN_LENGTH} samples per item, got signals "
                             f"{tuple(signals.shape)}: load the recording with the imu modality, which refuses "
                             "recordings shorter than 1 s")
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=signals.device)
        mask = mask.to(torch.bool)
        keep = mask.unsqueeze(1).to(signals.dtype)  # [B, 1, T]
        x = signals.transpose(1, 2) * keep  # [B, C, T]
        x = self.act(self.conv_in(x)) * keep
        x = self.act(self.conv_down(x))  # [B, D, T']
        lengths = self.output_lengths(mask.sum(dim=1))
        steps = x.shape[-1]
        feature_mask = torch.arange(steps, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        x = x.transpose(1, 2) + _sinusoid(steps, self.feature_dim, x.device, x.dtype)
        x = self.transformer(x, src_key_padding_mask=~feature_mask)
        x = self.norm(x) * feature_mask.unsqueeze(-1).to(x.dtype)  # padded steps are exactly zero
        return x, feature_mask


def _sinusoid(steps: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Fixed sinusoidal positions (Vaswani et al.): any length works, nothing to learn or to overflow."""
    position = torch.arange(steps, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(steps, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table.to(dtype)


def build_encoder(config: Mapping[str, Any] | None = None) -> Encoder:
    """An untrained encoder from an adapter's encoder section: ``{"name": ..., width/depth/heads...}``.

    Unknown names and unknown keys raise ``ValueError`` naming what is accepted.
    """
    config = dict(config or {})
    name = config.get("name", ImuEncoderConfig.name)
    if name not in ENCODER_NAMES:
        raise ValueError(f"unknown IMU encoder {name!r}: this plugin provides {', '.join(ENCODER_NAMES)}; "
                         "upgrade anymal-plugin-imu if the adapter needs a newer encoder")
    if name == "imu-stats-mlp":
        from .stats_encoder import ImuStatsEncoder as model, ImuStatsEncoderConfig as settings
    else:
        model, settings = ImuConvTransformer, ImuEncoderConfig
    known = {f.name for f in dataclasses.fields(settings)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for IMU encoder {name!r}: "
                         f"accepted are {', '.join(sorted(known))}")
    return model(settings(**config))
