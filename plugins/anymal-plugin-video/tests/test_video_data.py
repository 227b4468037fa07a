"""The generated clips say what they show: motion goes the way the caption says, held-out combinations stay out
of training, and a split makes each clip once, on first access, shared by all of its items."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch

from anymal_plugin_video.data import (SOURCE_FRAMES, ClipSplit, _plan, build_counts, build_directions, build_events,
                                      build_motion, random_clip, render_clip)
from anymal_plugin_video.labels import (COUNT_WORDS, DIRECTIONS, HELD_OUT, SIZES, count_from_text,
                                        direction_from_text, event_from_text, shape_from_text)

_RGB = {"red": (215, 35, 35), "green": (35, 170, 60), "blue": (40, 80, 220), "yellow": (235, 205, 30)}


def pixels(frame: np.ndarray, color: str) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) coordinates of the pixels of ``color``."""
    distance = np.abs(frame.astype(int) - np.array(_RGB[color])).sum(axis=-1)
    ys, xs = np.nonzero(distance < 60)
    return xs, ys


def centroid(frame: np.ndarray, color: str) -> np.ndarray:
    xs, ys = pixels(frame, color)
    return np.array([xs.mean(), ys.mean()])


def shows(frame: np.ndarray, color: str) -> bool:
    return len(pixels(frame, color)[0]) > 50


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_moving_shape_moves_the_way_its_caption_says(direction: str) -> None:
    # without still shapes, which may share the moving one's colour
    clip = random_clip(random.Random(direction), "moving", "square", direction, others=0)
    frames = render_clip(clip)
    assert frames.shape == (SOURCE_FRAMES, clip.height, clip.width, 3)
    dx, dy = centroid(frames[-1], clip.color) - centroid(frames[0], clip.color)
    expected = {"left": dx < -20, "right": dx > 20, "up": dy < -20, "down": dy > 20}
    assert expected[direction], (direction, dx, dy)
    assert direction_from_text(clip.caption()) == direction and shape_from_text(clip.caption()) == "square"


def test_appearing_disappearing_and_changing_colour_are_drawn_as_captioned() -> None:
    rng = random.Random(5)
    appearing = random_clip(rng, "appearing", "circle", others=0)
    frames = render_clip(appearing)
    assert not shows(frames[0], appearing.color) and shows(frames[-1], appearing.color)
    changing = random_clip(rng, "changing color", "triangle", others=0)
    frames = render_clip(changing)
    assert shows(frames[0], changing.color) and not shows(frames[0], changing.new_color)
    assert shows(frames[-1], changing.new_color) and not shows(frames[-1], changing.color)
    assert event_from_text(changing.caption()) == "changing color"
    assert event_from_text("A red circle disappears.") == "disappearing"


def test_held_out_combinations_are_only_in_their_own_split() -> None:
    for split in ("train", "val", "test"):
        seen = {(c.shape, c.direction) for c, _ in _plan(split, 0, None) if c.event == "moving"}
        assert not seen & set(HELD_OUT) and len(seen) == 12 - len(HELD_OUT)
    held = {(c.shape, c.direction) for c, _ in _plan("test_heldout", 0, None)}
    assert held == set(HELD_OUT)
    events = Counter(c.event for c, _ in _plan("train", 0, None))
    assert events == {"moving": 700, "appearing": 100, "disappearing": 100, "changing color": 100}
    assert len(_plan("train", 0, None)) == SIZES["train"]


def test_a_split_makes_each_clip_once_and_its_items_share_it() -> None:
    split = build_motion("val", limit=4)
    assert isinstance(split, ClipSplit) and not split._signals  # nothing rendered yet
    first, second = split[0], split[1]
    assert first["signal"] is second["signal"]  # one clip, several questions
    assert split[0]["signal"] is first["signal"] and len(split._signals) == 1
    assert first["signal"].shape == (8, 3, 224, 224) and first["signal"].dtype == torch.float32
    assert [item["question"] for item in split[:3]] == [item["question"] for item in (split[0], split[1], split[2])]
    with pytest.raises(IndexError):
        split[len(split)]
    # the same split built again gives the same clip, pixel for pixel
    assert torch.equal(build_motion("val", limit=1)[0]["signal"], first["signal"])


def test_answers_parse_back_to_their_labels() -> None:
    for build, parse in ((build_directions, direction_from_text), (build_events, event_from_text),
                         (build_counts, count_from_text)):
        split = build("test", limit=30)
        labels = [split._entries[i][3] for i in range(len(split))]
        answers = [split._entries[i][2] for i in range(len(split))]
        assert [parse(a) for a in answers] == labels
    counts = {entry[3] for entry in build_counts("train", limit=100)._entries}
    assert counts == set(COUNT_WORDS)
