"""The encoder: the image plugin's frozen EfficientNet-Lite0 on every frame, frame order, place and motion kept
by codes that have no weights, padded frames exactly zero, and clear errors for bad configs."""

from __future__ import annotations

import pytest
import torch

from anymal_host.testing import check_encoder

from anymal_plugin_video import VideoModality, example_path
from anymal_plugin_video.data import build_directions
from anymal_plugin_video.encoder import (DEFAULT_SPACE_CHANNELS, DEFAULT_TIME_CHANNELS, MOTION_CHANNELS,
                                        MOTION_FIELDS, MOTION_SCALE, build_encoder, frame_code, grid_code,
                                        motion_code)

CODES = DEFAULT_TIME_CHANNELS + DEFAULT_SPACE_CHANNELS + MOTION_CHANNELS
PLACE = slice(1280 + DEFAULT_TIME_CHANNELS, 1280 + DEFAULT_TIME_CHANNELS + DEFAULT_SPACE_CHANNELS)
MOTION = slice(1280 + DEFAULT_TIME_CHANNELS + DEFAULT_SPACE_CHANNELS, None)
VX, VY, RIGHT, LEFT, DOWN, UP = (MOTION_FIELDS.index(f) for f in ("vx", "vy", "right", "left", "down", "up"))

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
    where = features[0, :, PLACE]
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


def test_the_motion_code_tracks_what_changes() -> None:
    """A bright square crossing still features left to right: each frame's centroid of change sits on the
    square, the velocity points right, and the still cells read no change."""
    side, frames = 7, 5
    features = torch.ones(frames, side * side, 16)
    for t in range(frames):
        features[t, 3 * side + 1 + t] += 4.0  # row 3, column 1 + t
    code = motion_code(features, side)
    assert code.shape == (frames, 49, MOTION_CHANNELS)
    change = code[..., 0]
    assert float(change.max()) == pytest.approx(1.0) and float(change[:, :3 * side].max()) == 0.0
    x, y = code[:, 0, 1], code[:, 0, 2]
    assert torch.all(x[1:] > x[:-1]) and torch.allclose(y, torch.zeros(frames), atol=1e-6)  # row 3 is the middle
    velocity = code[0, 0, VX:VY + 1] / MOTION_SCALE
    assert float(velocity[0]) > 0.3 and abs(float(velocity[1])) < 1e-6
    # the signed parts: all of the velocity is rightward
    assert torch.allclose(code[0, 0, RIGHT], code[0, 0, VX]) and float(code[0, 0, [LEFT, DOWN, UP]].abs().max()) < 1e-6
    assert torch.equal(motion_code(torch.ones(frames, 49, 16), side), torch.zeros(frames, 49, MOTION_CHANNELS))
    assert torch.equal(motion_code(features[:1], side), torch.zeros(1, 49, MOTION_CHANNELS))  # one frame: no motion


def test_the_motion_code_of_real_clips_names_their_direction(encoder: torch.nn.Module) -> None:
    """On generated test clips (drawn, encoded to MP4, decoded), the velocity channels alone name the direction
    of most moving objects: the signal the adapter learns to read."""
    clips = build_directions("test", limit=20)
    right = 0
    for item in clips:
        with torch.no_grad():
            features, _ = encoder(item["signal"].unsqueeze(0))
        motion = features[0, 0, MOTION]
        vx, vy = float(motion[VX]), float(motion[VY])
        named = ("right" if vx > 0 else "left") if abs(vx) > abs(vy) else ("down" if vy > 0 else "up")
        right += named == item["label"]
    assert right >= 0.8 * len(clips)


def test_the_codes_do_not_depend_on_the_batch(encoder: torch.nn.Module) -> None:
    clip = MODALITY.preprocess(MODALITY.load(example_path(), frames=4))
    other = torch.rand_like(clip)
    batch, mask = MODALITY.collate([clip, other[:3]])
    with torch.no_grad():
        together, _ = encoder(batch, mask)
        alone, _ = encoder(clip.unsqueeze(0))
    assert torch.allclose(together[0], alone[0], atol=1e-5)


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
    ({"name": "frames", "motion": "yes"}, "motion='yes': use true or false"),
])
def test_bad_configs_say_what_to_do(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_encoder(config)
