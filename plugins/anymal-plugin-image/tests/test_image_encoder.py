"""The default encoder is EfficientNet-Lite0 with the package's real ImageNet weights, converted once to
safetensors; it is frozen by default, gives 7 x 7 x 1280 features per image, and refuses bad configs clearly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from anymal_host.testing import check_encoder

import anymal_plugin_image.encoder as enc
from anymal_plugin_image import ImageModality, example_path

MODALITY = ImageModality()
# ImageNet-1k classes: 967 espresso; 281-285 the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian).
ESPRESSO = 967
CATS = range(281, 286)


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    return enc.build_timm_model(num_classes=1000).eval()


def _top(classifier: torch.nn.Module, photo: str) -> tuple[int, float]:
    from skimage import data

    image = MODALITY.preprocess(MODALITY.load(getattr(data, photo)()))
    with torch.no_grad():
        probabilities = classifier(image).softmax(-1)[0]
    return int(probabilities.argmax()), float(probabilities.max())


def test_the_converted_weights_classify_real_photos(classifier: torch.nn.Module) -> None:
    # Weights mapped in the wrong order, or the wrong normalisation, would not give these.
    label, confidence = _top(classifier, "coffee")
    assert label == ESPRESSO and confidence > 0.5
    label, _ = _top(classifier, "chelsea")
    assert label in CATS


def test_weights_are_converted_once_into_anymal_home_as_safetensors() -> None:
    path = enc.convert_package_weights()
    assert path == Path(os.environ["ANYMAL_HOME"]) / "encoders" / enc.CONVERTED_NAME
    from safetensors import safe_open

    with safe_open(str(path), "pt") as file:
        assert file.metadata()["sha256"].startswith("57934424")
        assert len(list(file.keys())) == 247
    stamp = path.stat().st_mtime_ns
    assert enc.convert_package_weights() == path and path.stat().st_mtime_ns == stamp  # not converted again
    assert not list(path.parent.glob(".converting-*"))  # no temporary file left behind


def test_a_conversion_refuses_a_file_that_is_not_the_expected_one(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path))
    fake = tmp_path / "fake.pth"
    torch.save({"a": torch.zeros(2)}, fake)
    monkeypatch.setattr(enc, "_package_file", lambda: fake)
    with pytest.raises(ValueError, match="SHA-256"):
        enc.convert_package_weights()
    assert not (tmp_path / "encoders" / enc.CONVERTED_NAME).exists()


def test_encoder_gives_a_7x7_grid_of_1280_features_and_passes_the_kit() -> None:
    check_encoder(MODALITY)
    encoder = MODALITY.build_encoder(MODALITY.default_encoder).eval()
    assert encoder.feature_dim == 1280 and encoder.pretrained_weights is True
    one = MODALITY.preprocess(MODALITY.load(example_path()))
    two = torch.cat([one, MODALITY.preprocess(MODALITY.load(example_path("three_shapes.jpg")))])  # two frames
    features, mask = encoder(*MODALITY.collate([two, one]))
    assert features.shape == (2, 98, 1280) and mask.sum(1).tolist() == [98, 49]
    assert torch.equal(features[1, 49:], torch.zeros(49, 1280))


def test_an_earlier_stage_gives_a_finer_grid_from_the_same_weights() -> None:
    """stage=3: EfficientNet-Lite0's stride-16 map, 14 x 14 cells of 112 features (small objects, such as the
    shapes of a counting scene, no longer share a cell); the same weights, the same frame and padding rules."""
    config = {**MODALITY.default_encoder, "stage": 3}
    encoder = MODALITY.build_encoder(config).eval()
    assert encoder.feature_dim == 112 and encoder.pretrained_weights is True
    one = MODALITY.preprocess(MODALITY.load(example_path()))
    features, mask = encoder(*MODALITY.collate([torch.cat([one, one]), one]))
    assert features.shape == (2, 392, 112) and mask.sum(1).tolist() == [392, 196]
    assert torch.equal(features[0, :196], features[0, 196:]) and torch.equal(features[1, 196:], torch.zeros(196, 112))
    # the stage-3 map is the backbone's own intermediate, not a separate network
    final = MODALITY.build_encoder(MODALITY.default_encoder).eval()
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(), encoder.state_dict().values()))


def test_frozen_by_default_it_neither_learns_nor_updates_batch_norm() -> None:
    encoder = MODALITY.build_encoder(MODALITY.default_encoder)
    encoder.train()
    assert not encoder.backbone.training  # batch norm keeps ImageNet's statistics
    assert not any(p.requires_grad for p in encoder.parameters())
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    frames = MODALITY.preprocess(MODALITY.load(example_path())).unsqueeze(0)
    features, _ = encoder(frames, torch.ones(1, 1, dtype=torch.bool))
    assert not features.requires_grad
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    trainable = MODALITY.build_encoder({**MODALITY.default_encoder, "trainable": True}).train()
    assert trainable.backbone.training and all(p.requires_grad for p in trainable.parameters())


def test_the_meta_build_reads_no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    def never() -> Path:
        raise AssertionError("weights were read for a meta-device skeleton")

    monkeypatch.setattr(enc, "convert_package_weights", never)
    with torch.device("meta"):
        skeleton = MODALITY.build_encoder(MODALITY.default_encoder)
    assert next(skeleton.parameters()).device.type == "meta"


@pytest.mark.parametrize(("config", "message"), [
    ({"name": "resnet"}, "unknown image encoder 'resnet'"),
    ({"name": "timm", "depth": 2}, "no option"),
    ({"name": "timm", "model": "no_such_model_xyz", "weights": "none"}, "timm has no model"),
    ({"name": "timm", "model": "resnet18"}, "fit efficientnet_lite0 only"),
    ({"name": "timm", "weights": "imagenet"}, "weights='imagenet'"),
    ({"name": "timm", "trainable": "yes"}, "trainable='yes'"),
    ({"name": "timm", "stage": "16"}, "give a stage index"),
    ({"name": "timm", "stage": True}, "give a stage index"),
    ({"name": "timm", "stage": 9}, r"no feature stage 9: use one of 0 \(stride 2, 16 channels\)"),
])
def test_encoder_config_is_checked(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        enc.build_encoder(config)


def test_any_timm_model_builds_by_name() -> None:
    # Offline, with random weights: the online path (weights=timm) is timm's own pretrained loading.
    encoder = enc.build_encoder({"name": "timm", "model": "resnet18", "weights": "none"})
    assert encoder.feature_dim == 512 and encoder.pretrained_weights is False
    image = MODALITY.preprocess(MODALITY.load(example_path()), model="resnet18", weights="timm")
    features, mask = encoder(image.unsqueeze(0), torch.ones(1, 1, dtype=torch.bool))
    assert features.shape == (1, 49, 512) and bool(mask.all())
