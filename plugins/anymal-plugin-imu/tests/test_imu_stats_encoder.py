"""The window-statistics IMU encoder: what it computes, padding and batch invariance, its configuration errors,
and the host's encoder conformance checks."""

from __future__ import annotations

import math

import pytest
import torch

from anymal_host.modality import Encoder, pad_sequences
from anymal_host.testing import check_encoder
from anymal_plugin_imu import ImuModality
from anymal_plugin_imu.encoder import build_encoder
from anymal_plugin_imu.signals import normalise
from anymal_plugin_imu.stats_encoder import STATISTICS, ImuStatsEncoder, window_statistics

CONFIG = {"name": "imu-stats-mlp", "width": 16, "tokens": 4, "hidden": 32}


def _encoder(seed: int = 0) -> ImuStatsEncoder:
    torch.manual_seed(seed)
    return ImuModality().build_encoder(CONFIG).eval()


def test_statistics_read_the_direction_of_gravity():
    still = torch.zeros(128, 6)
    still[:, 1] = 1.0  # 1 g along the phone's y axis, no rotation: a phone held upright and still
    stats = window_statistics(still)
    assert stats.shape == (STATISTICS,)
    assert torch.allclose(stats[:3], torch.tensor([0.0, 1.0, 0.0])) and math.isclose(stats[3].item(), 1.0, rel_tol=1e-6)
    tilted = still.clone()
    tilted[:, 1], tilted[:, 2] = math.cos(0.3), math.sin(0.3)  # the same phone tilted by 0.3 rad
    assert torch.allclose(window_statistics(tilted)[:3], torch.tensor([0.0, math.cos(0.3), math.sin(0.3)]), atol=1e-6)
    # walking-like shaking shows in the body acceleration's band energies, not in the still window's
    shaking = still.clone()
    shaking[:, 2] += 0.3 * torch.sin(torch.arange(128) * 2 * math.pi * 2.0 / 50)  # 2 Hz
    assert window_statistics(shaking)[4:].abs().sum() > 10 * window_statistics(still)[4:].abs().sum()


def test_features_are_tokens_steps_and_ignore_padding_and_batch_neighbours():
    encoder = _encoder()
    assert isinstance(encoder, Encoder) and encoder.feature_dim == 16
    generator = torch.Generator().manual_seed(1)
    windows = [normalise(torch.randn(n, 6, generator=generator) * 0.3) for n in (128, 90, 300)]
    batch, mask = pad_sequences(windows)
    features, feature_mask = encoder(batch, mask)
    assert features.shape == (3, 4, 16) and feature_mask.all()
    for i, window in enumerate(windows):
        alone, _ = encoder(window.unsqueeze(0))
        assert torch.allclose(alone[0], features[i], atol=1e-5)


def test_configuration_errors_name_what_is_accepted():
    with pytest.raises(ValueError, match="accepted are"):
        build_encoder({"name": "imu-stats-mlp", "tokenz": 4})
    with pytest.raises(ValueError, match="tokens must be at least 1"):
        build_encoder({"name": "imu-stats-mlp", "tokens": 0})
    with pytest.raises(ValueError, match="at least 2 samples"):
        _encoder()(torch.zeros(1, 1, 6))
    with pytest.raises(ValueError, match=r"\[B, T, 6\]"):
        _encoder()(torch.zeros(1, 128, 5))


def test_the_stats_encoder_passes_the_conformance_checks():
    check_encoder(ImuModality(), CONFIG)
