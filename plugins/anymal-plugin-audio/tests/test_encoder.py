"""Whisper's encoder as an anymal ``Encoder``: real weights, 1,500 frames, a mask that covers the real audio."""

from __future__ import annotations

import pytest
import torch

from anymal_plugin_audio import AudioModality, example_path
from anymal_plugin_audio.encoder import ENCODER_NAME, build_encoder, frames_for


@pytest.fixture(scope="module")
def encoder():
    return build_encoder({"name": ENCODER_NAME}).eval()


def test_features_mask_and_zero_padding(encoder):
    modality = AudioModality()
    clip = modality.preprocess(modality.load(example_path()))
    batch, mask = modality.collate([clip, clip[:8000]])
    features, feature_mask = encoder(batch, mask)
    assert features.shape == (2, 1500, 384) and encoder.feature_dim == 384
    # 20 ms a frame: half a second is 25 frames
    assert feature_mask.sum(1).tolist() == [frames_for(torch.tensor(clip.shape[0])).item(), 25]
    assert bool(features[~feature_mask].eq(0).all()) and bool(features[feature_mask].abs().sum(-1).gt(0).all())


def test_frames_for_counts_partly_covered_frames():
    assert frames_for(torch.tensor([1, 320, 321, 480_000])).tolist() == [1, 1, 2, 1500]


def test_the_weights_are_whispers_not_random(encoder):
    from anymal_plugin_audio.whisper_weights import load_state_dict

    state = load_state_dict("model.encoder.", progress=False)
    assert torch.equal(encoder.whisper.conv1.weight, state["model.encoder.conv1.weight"])
    assert encoder.pretrained_weights is True


def test_frozen_by_default_and_trainable_on_request():
    frozen = build_encoder({"name": ENCODER_NAME})
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.whisper.training  # no dropout on a frozen encoder while the projector trains
    trainable = build_encoder({"name": ENCODER_NAME, "frozen": False})
    batch, mask = torch.randn(1, 3200, 1) * 0.1, torch.ones(1, 3200, dtype=torch.bool)
    features, _ = trainable(batch, mask)
    features.sum().backward()
    assert trainable.whisper.conv1.weight.grad is not None


@pytest.mark.parametrize("config, match", [
    ({"name": "whisper-base"}, "unknown audio encoder"),
    ({"name": ENCODER_NAME, "width": 3}, "no option"),
    ({"name": ENCODER_NAME, "frozen": "yes"}, "give true or false"),
])
def test_bad_configs_are_refused(config, match):
    with pytest.raises(ValueError, match=match):
        build_encoder(config)
