"""The IMU encoder: shapes, padding invariance, determinism, configuration errors."""

from __future__ import annotations

import pytest
import torch

from anymal_host.modality import Encoder, pad_sequences
from anymal_plugin_imu import ImuModality
from anymal_plugin_imu.encoder import ImuConvTransformer, ImuEncoderConfig, build_encoder

SMALL = {"name": "imu-conv-transformer", "width": 32, "depth": 2, "heads": 4}


def _encoder(seed: int = 0, **overrides) -> ImuConvTransformer:
    torch.manual_seed(seed)
    return ImuModality().build_encoder({**SMALL, **overrides}).eval()


def test_a_window_gives_64_steps_of_feature_dim():
    encoder = _encoder()
    assert isinstance(encoder, Encoder) and encoder.feature_dim == 32
    features, mask = encoder(torch.randn(3, 128, 6), torch.ones(3, 128, dtype=torch.bool))
    assert features.shape == (3, 64, 32) and mask.shape == (3, 64) and mask.all()
    features, mask = encoder(torch.randn(2, 129, 6))  # the mask may be left out: all steps real
    assert features.shape == (2, 64, 32)


def test_default_size_is_small():
    params = sum(p.numel() for p in build_encoder({"name": "imu-conv-transformer"}).parameters())
    assert 200_000 <= params <= 1_000_000


def test_padding_does_not_change_real_steps():
    encoder = _encoder()
    items = [torch.randn(n, 6) for n in (200, 129, 128, 77, 50)]
    batch, mask = pad_sequences(items)
    features, feature_mask = encoder(batch, mask)
    for i, item in enumerate(items):
        alone, alone_mask = encoder(item.unsqueeze(0), torch.ones(1, len(item), dtype=torch.bool))
        steps = alone.shape[1]
        assert alone_mask.all() and int(feature_mask[i].sum()) == steps == len(item) // 2
        torch.testing.assert_close(features[i, :steps], alone[0], atol=1e-5, rtol=1e-5)
        assert torch.count_nonzero(features[i, steps:]) == 0  # padded steps are exactly zero


def test_garbage_in_padding_is_ignored():
    encoder = _encoder()
    batch, mask = pad_sequences([torch.randn(128, 6), torch.randn(64, 6)])
    noisy = batch.clone()
    noisy[1, 64:] = 1e3 * torch.randn(64, 6)
    torch.testing.assert_close(encoder(batch, mask)[0], encoder(noisy, mask)[0], atol=1e-5, rtol=1e-5)


def test_deterministic_under_manual_seed():
    x = torch.randn(2, 128, 6)
    a, b, c = _encoder(seed=3), _encoder(seed=3), _encoder(seed=4)
    torch.testing.assert_close(a(x)[0], b(x)[0], atol=0, rtol=0)
    assert not torch.allclose(a(x)[0], c(x)[0])
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_trains_end_to_end():
    encoder = _encoder().train()
    batch, mask = pad_sequences([torch.randn(128, 6), torch.randn(90, 6)])
    features, feature_mask = encoder(batch, mask)
    features[feature_mask].pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())


def test_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="unknown IMU encoder 'imu-lstm': this plugin provides imu-conv-transformer"):
        build_encoder({"name": "imu-lstm"})
    with pytest.raises(ValueError, match="unknown option.*widht.*accepted are"):
        build_encoder({"name": "imu-conv-transformer", "widht": 64})
    with pytest.raises(ValueError, match="not divisible by heads"):
        build_encoder({"width": 30, "heads": 4})
    with pytest.raises(ValueError, match="must be odd"):
        ImuEncoderConfig(kernel_size=4)
    with pytest.raises(ValueError, match=r"expects signals \[B, T, 6\]"):
        _encoder()(torch.randn(2, 128, 3))
