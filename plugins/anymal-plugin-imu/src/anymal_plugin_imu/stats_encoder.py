"""The window-statistics IMU encoder: gravity direction, spreads and band energies through a small MLP.

Sitting and standing move alike; what tells them apart is how the phone hangs, the direction of gravity in the
phone's frame. A convolution trained from 18 people learns that direction from their own postures and carries
it poorly to new people. This encoder computes what the classic UCI HAR features compute, once per recording:
the low-passed gravity direction and size; per channel of the body acceleration, the gyroscope and the raw
acceleration the mean, spread, peak, median absolute deviation and eight band energies from 0.4 to 12.5 Hz;
the body acceleration magnitude's mean and spread (114 numbers). An MLP turns them into a few feature steps
(``tokens``) for the projector.

Each item's statistics use only its real samples (the mask), so padding never changes them, and every step is
a function of the statistics: the features are the same for an item alone or in a padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from anymal_host.modality import Encoder

from .encoder import check_sizes
from .spec import SAMPLE_RATE

__all__ = ["ImuStatsEncoderConfig", "ImuStatsEncoder", "window_statistics", "STATISTICS"]

#: Numbers :func:`window_statistics` gives per recording.
STATISTICS = 114
#: Gravity is the acceleration averaged over this many samples (0.5 s at 50 Hz), centred.
_GRAVITY_SAMPLES = 25
#: Band edges in Hz: eight bands of 1.5625 Hz from the 0.39 Hz bin up, the first 32 bins of a 128-sample window.
_BAND_HZ = 50.0 / 128
_BANDS = 8
_BINS_PER_BAND = 4


@dataclass(frozen=True)
class ImuStatsEncoderConfig:
    """Architecture of :class:`ImuStatsEncoder` (the ``encoder.config`` of an adapter)."""

    # Registered encoder name (``build_encoder`` in :mod:`.encoder` builds either encoder by name).
    name: str = "imu-stats-mlp"
    # Width of each feature step (= feature_dim).
    width: int = 128
    # Feature steps per recording: the projector's tokens with a linear or MLP projector.
    tokens: int = 8
    # Hidden width of the MLP.
    hidden: int = 256
    # Dropout after the hidden layer (train mode only): 114 statistics from 18 people overfit without it.
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.name != "imu-stats-mlp":
            raise ValueError(f"ImuStatsEncoderConfig configures imu-stats-mlp, not {self.name!r}")
        check_sizes(self, "IMU stats encoder", ("width", "tokens", "hidden"))


def window_statistics(signal: torch.Tensor) -> torch.Tensor:
    """The :data:`STATISTICS` numbers of one recording ``[T, 6]`` in g and rad/s (T >= 2)."""
    length = int(signal.shape[0])
    acc, gyro = signal[:, :3], signal[:, 3:]
    kernel = min(_GRAVITY_SAMPLES, length - (1 - length % 2))  # odd, at most the recording
    gravity = F.avg_pool1d(acc.T.unsqueeze(0), kernel, 1, kernel // 2, count_include_pad=False)[0].T
    body = acc - gravity
    mean_gravity = gravity.mean(0)
    parts = [mean_gravity / mean_gravity.norm().clamp_min(1e-6), mean_gravity.norm().reshape(1)]
    for series in (body, gyro, acc):
        median = series.median(0).values
        parts += [series.mean(0), series.std(0, unbiased=length > 1), series.abs().max(0).values,
                  (series - median).abs().median(0).values, _band_energies(series)]
    magnitude = body.norm(dim=-1)
    parts += [magnitude.mean().reshape(1), magnitude.std(unbiased=length > 1).reshape(1)]
    return torch.cat(parts)


def _band_energies(series: torch.Tensor) -> torch.Tensor:
    """Mean FFT magnitude per band and channel ``[_BANDS * 3]``, scaled to a 128-sample window's values so any
    length compares (a band with no bin in a short recording is 0)."""
    length = int(series.shape[0])
    spectrum = torch.fft.rfft(series, dim=0).abs() * (128.0 / length)  # [bins, 3]
    freqs = torch.arange(spectrum.shape[0], dtype=series.dtype, device=series.device) * (SAMPLE_RATE / length)
    bands = []
    for band in range(_BANDS):
        low = (1 + band * _BINS_PER_BAND - 0.5) * _BAND_HZ
        high = low + _BINS_PER_BAND * _BAND_HZ
        inside = (freqs >= low) & (freqs < high)
        bands.append(spectrum[inside].mean(0) if inside.any() else series.new_zeros(3))
    return torch.stack(bands).reshape(-1)


class ImuStatsEncoder(Encoder):
    """``forward(signals [B, T, 6] normalised, mask [B, T]) -> (features [B, tokens, width], all-True mask)``."""

    #: Fewest samples: a spread needs two.
    MIN_LENGTH = 2
    #: The plugin ships no pretrained encoder: an IMU adapter package must carry its encoder weights.
    pretrained_weights = False

    def __init__(self, config: ImuStatsEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or ImuStatsEncoderConfig()
        c = self.config
        self.feature_dim = c.width
        # LayerNorm over the statistics instead of fixed scaling constants: the numbers span orders of
        # magnitude (directions near 1, band energies up to tens), and the norm learns its own scale.
        self.mlp = nn.Sequential(nn.LayerNorm(STATISTICS), nn.Linear(STATISTICS, c.hidden), nn.GELU(),
                                 nn.Dropout(c.dropout), nn.Linear(c.hidden, c.tokens * c.width))
        self.position = nn.Parameter(torch.zeros(c.tokens, c.width))
        self.norm = nn.LayerNorm(c.width)

    def forward(self, signals: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        from .signals import denormalise

        if signals.dim() != 3 or signals.shape[-1] != 6:
            raise ValueError(f"IMU stats encoder expects signals [B, T, 6], got {tuple(signals.shape)}: load and "
                             "preprocess the recording with the imu modality")
        b, t, _ = signals.shape
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=signals.device)
        lengths = mask.to(torch.bool).sum(dim=1).tolist()
        if min(lengths, default=t) < self.MIN_LENGTH:
            raise ValueError(f"IMU stats encoder needs at least {self.MIN_LENGTH} samples per item, got lengths "
                             f"{lengths}: load the recording with the imu modality, which refuses recordings "
                             "shorter than 1 s")
        # Statistics in g and rad/s of each item's real samples: padding never reaches them.
        raw = denormalise(signals.float())
        stats = torch.stack([window_statistics(raw[i, :n]) for i, n in enumerate(lengths)]).to(signals.dtype)
        c = self.config
        steps = self.mlp(stats).reshape(b, c.tokens, c.width) + self.position
        features = self.norm(steps)
        return features, torch.ones(b, c.tokens, dtype=torch.bool, device=signals.device)

