"""The plugin registers what it should and passes anymal's conformance kit (the checks every host runs on a
plugin's modality, encoder and data sets)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
from typing import Any

import pytest

from anymal_host.testing import check_dataset, check_plugin, registry_with

import anymal_plugin_image.plugin as plugin
from anymal_plugin_image import ImageModality, example_path
from anymal_plugin_image.data import COLORS, COUNT_WORDS, SHAPES
from anymal_plugin_image.labels import MIX_LABELS

DATA_SETS = ("image:shapes", "image:colors", "image:counts", "image:digits", "image:mix")


def test_registers_the_modality_and_the_data_sets() -> None:
    registry = registry_with(plugin)
    modality = registry.modality("image")
    assert isinstance(modality, ImageModality)
    for name in ("photo.PNG", "photo.jpg", "photo.jpeg", "anim.gif", "scan.tiff", "x.webp", "x.bmp"):
        assert registry.modality_for(name) is modality, name
    assert registry.modality_for(media_type="image/jpeg") is modality
    assert registry.dataset("image:shapes").labels == SHAPES
    assert registry.dataset("image:colors").labels == COLORS
    assert registry.dataset("image:mix").labels == MIX_LABELS
    assert registry.dataset("image:counts").labels == COUNT_WORDS
    assert registry.dataset("image:digits").labels == tuple("0123456789")
    assert not [error for info in registry.plugins.values() for error in info.errors]


def test_passes_the_conformance_kit() -> None:
    # The data sets are checked below on a few items each: the kit would build every split in full.
    check_plugin(plugin, skip=DATA_SETS)


@pytest.mark.parametrize("name", DATA_SETS)
def test_data_sets_pass_the_conformance_kit_on_a_few_items(name: str) -> None:
    registry = registry_with(plugin)
    spec = registry.dataset(name)

    def few(split: str, **options: Any) -> Any:
        return spec.build(split, limit=6, **options)

    held_out = name in ("image:shapes", "image:colors")
    splits = ("train", "val", "test", "test_heldout") if held_out else ("train", "val", "test")
    check_dataset(dataclasses.replace(spec, build=few), splits=splits, modality=registry.modality("image"))


def test_the_example_input_is_a_shipped_png() -> None:
    modality = ImageModality()
    assert modality.example_input() == example_path("red_circle.png")
    image = modality.load(modality.example_input())
    assert image.shape == (1, 3, 160, 160)
    red, green, blue = image[0, :, 80, 80].tolist()  # the centre of the circle is red
    assert red > 0.7 and green < 0.3 and blue < 0.3
    with pytest.raises(FileNotFoundError, match="the examples are blue_triangle.png, coffee.jpg"):
        example_path("sideways.png")


def test_entry_point_is_installed() -> None:
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="anymal")}
    if "image" not in entry_points:
        pytest.skip("anymal-plugin-image is not installed: run `pip install -e .` in its folder")
    assert entry_points["image"] == "anymal_plugin_image.plugin"
