"""The plugin registers what it should, passes anymal's conformance kit (the checks every host runs on a
plugin's modality, encoder and data sets), and stands on the image plugin through its public API only."""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

from anymal_host.testing import check_dataset, check_plugin, registry_with

import anymal_plugin_image.plugin as image_plugin
import anymal_plugin_video.plugin as plugin
from anymal_plugin_video import VideoModality, example_path
from anymal_plugin_video.labels import COUNT_WORDS, DIRECTIONS, EVENTS, MIX_LABELS, SHAPES

DATA_SETS = ("video:directions", "video:shapes", "video:events", "video:counts", "video:motion")
SOURCE = Path(plugin.__file__).resolve().parent


def test_registers_the_modality_and_the_data_sets() -> None:
    registry = registry_with(plugin, image_plugin)
    modality = registry.modality("video")
    assert isinstance(modality, VideoModality)
    for name in ("clip.mp4", "CLIP.MOV", "x.webm", "x.mkv", "x.avi", "x.m4v"):
        assert registry.modality_for(name) is modality, name
    assert registry.modality_for(media_type="video/mp4") is modality
    # a GIF stays the image plugin's (its first frame) unless the video modality is named
    assert registry.modality_for("anim.gif").name == "image"
    assert registry.dataset("video:directions").labels == DIRECTIONS
    assert registry.dataset("video:shapes").labels == SHAPES
    assert registry.dataset("video:events").labels == EVENTS
    assert registry.dataset("video:counts").labels == COUNT_WORDS
    assert registry.dataset("video:motion").labels == MIX_LABELS
    assert not [error for info in registry.plugins.values() for error in info.errors]


def test_passes_the_conformance_kit() -> None:
    # The data sets are checked below on a few clips each: the kit would build every split in full.
    check_plugin(plugin, skip=DATA_SETS)


@pytest.mark.parametrize("name", DATA_SETS)
def test_data_sets_pass_the_conformance_kit_on_a_few_clips(name: str) -> None:
    registry = registry_with(plugin)
    spec = registry.dataset(name)

    def few(split: str, **options: Any) -> Any:
        return spec.build(split, limit=10, **options)

    held_out = name in ("video:directions", "video:shapes")
    splits = ("train", "val", "test", "test_heldout") if held_out else ("train", "val", "test")
    check_dataset(dataclasses.replace(spec, build=few), splits=splits, modality=registry.modality("video"))


def test_the_example_input_is_a_shipped_clip() -> None:
    modality = VideoModality()
    assert modality.example_input() == example_path("red_circle_right.mp4")
    clip = modality.load(modality.example_input())
    assert clip.shape == (8, 3, 224, 224)
    with pytest.raises(FileNotFoundError, match="the examples are blue_square_up.mp4, red_circle_right.mp4"):
        example_path("sideways.mp4")


def test_uses_the_image_plugin_through_its_public_api_only() -> None:
    """Every import from anymal_plugin_image names the package itself and a name in its __all__."""
    import anymal_plugin_image

    for path in SOURCE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("anymal_plugin_image"):
                assert node.module == "anymal_plugin_image", f"{path.name} imports {node.module}"
                for alias in node.names:
                    assert alias.name in anymal_plugin_image.__all__, f"{path.name} imports {alias.name}"


def test_entry_point_is_installed() -> None:
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="anymal")}
    if "video" not in entry_points:
        pytest.skip("anymal-plugin-video is not installed: run `pip install -e .` in its folder")
    assert entry_points["video"] == "anymal_plugin_video.plugin"
