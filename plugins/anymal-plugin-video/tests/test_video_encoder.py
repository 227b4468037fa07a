"""The encoder: the image plugin's frozen EfficientNet-Lite0 on every frame, frame order kept by a code that
has no weights, padded frames exactly zero, and clear errors for bad configs."""

from __future__ import annotations

import pytest
import torch

from anymal_host.testing import check_encoder

from anymal_plugin_video import VideoModality, example_path
from anymal_plugin_video.encoder import (DEFAULT_SPACE_CHANNELS, DEFAULT_TIME_CHANNELS, build_encoder, frame_code,
                                        grid_code)

CODES = DEFAULT_TIME_CHANNELS + DEFAULT_SPACE_CHANNELS

MODALITY = VideoModality()


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    return build_encoder(dict(MODALITY.default_encoder)).eval()


def test_passes_the_encoder_conformance_checks() -> None:
    check_encoder(MODALITY)


def test_every_frame_gives_49_steps_of_image_features_and_their_codes(encoder: torch.nn.Module) -> None:
    clip = MODALITY.preprocess(MODALITY.load(example_path(), frames=4)).unsqueeze(0)
    with torch.no_grad():
        features, mask = encoder(clip, torch.ones(1, 4, dtype=torch.bool))
    assert encoder.feature_dim == 1280 + CODES
    assert features.shape == (1, 4 * 49, encoder.feature_dim) and bool(mask.all())
    when = features[0, :, 1280:1280 + DEFAULT_TIME_CHANNELS]
    assert torch.equal(when[0], when[48]) and not torch.equal(when[0], when[49])  # one code per frame
    assert torch.allclose(when[::49], frame_code(4, DEFAULT_TIME_CHANNELS))
    where = features[0, :, 1280 + DEFAULT_TIME_CHANNELS:]
    assert torch.allclose(where[:49], grid_code(7, DEFAULT_SPACE_CHANNELS))  # one code per cell, every frame
    assert torch.equal(where[:49], where[49:98])
    # the image part of each frame is the image plugin's encoder on that frame
    from anymal_plugin_image import build_encoder as build_image_encoder

    image = build_image_encoder({"name": "timm"}).eval()
    with torch.no_grad():
        alone, _ = image(clip[:, 2:3], torch.ones(1, 1, dtype=torch.bool))
    assert torch.allclose(features[0, 98:147, :1280], alone[0], atol=1e-5)


def test_the_frame_code_tells_frames_apart_and_in_order() -> None:
    code = frame_code(32, DEFAULT_TIME_CHANNELS)
    distances = torch.cdist(code, code)
    assert float(distances[~torch.eye(32, dtype=torch.bool)].min()) > 0.1  # no two frames share a code
    # nearer frames have nearer codes: distance grows with the gap over the first frames
    assert float(distances[0, 1]) < float(distances[0, 2]) < float(distances[0, 4])


def test_the_grid_code_tells_cells_apart_and_keeps_rows_and_columns_apart() -> None:
    code = grid_code(7, DEFAULT_SPACE_CHANNELS)
    distances = torch.cdist(code, code)
    assert float(distances[~torch.eye(49, dtype=torch.bool)].min()) > 0.1  # no two cells share a code
    half = DEFAULT_SPACE_CHANNELS // 2
    same_row = code[0:7, :half]  # row 0, every column: the row half is equal, the column half differs
    assert torch.allclose(same_row, same_row[:1].expand(7, -1))
    assert not torch.allclose(code[0:7, half:], code[0:1, half:].expand(7, -1))
    assert torch.equal(grid_code(7, 0), torch.zeros(49, 0))


def test_padded_frames_stay_zero_and_nothing_trains(encoder: torch.nn.Module) -> None:
    clip = MODALITY.preprocess(MODALITY.load(example_path(), frames=3))
    batch, mask = MODALITY.collate([clip, clip[:2]])
    with torch.no_grad():
        features, feature_mask = encoder(batch, mask)
    assert feature_mask[1].sum() == 2 * 49 and bool((features[1, 2 * 49:] == 0).all())
    assert not any(p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize(("config", "message"), [
    ({"name": "clip-vit"}, "unknown video encoder 'clip-vit'"),
    ({"name": "frames", "layers": 3}, "no option.s. layers"),
    ({"name": "frames", "time_channels": 7}, "time_channels=7: use a whole number from 0 to 256 divisible by 2"),
    ({"name": "frames", "space_channels": 6}, "space_channels=6: use a whole number from 0 to 256 divisible by 4"),
    ({"name": "frames", "stage": 99}, "no feature stage 99"),
])
def test_bad_configs_say_what_to_do(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_encoder(config)
