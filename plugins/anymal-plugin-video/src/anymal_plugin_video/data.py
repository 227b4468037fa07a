"""Data sets: generated clips whose captions and answers are known by construction, encoded to MP4 with PyAV.

No captioned video set installs offline, so the clips are made. Each clip is 2 s at 8 frames a second on a
flat or gradient background, drawn with the image plugin's scene renderer (its public
:func:`anymal_plugin_image.draw_scene`), and shows one event:

- **moving**: one shape moves left, right, up or down, slowly (a quarter of the canvas) or quickly (half of it),
  among 0 to 2 still shapes;
- **appearing** / **disappearing**: one shape appears or disappears midway;
- **changing color**: one shape turns from one colour to another.

Sizes, positions, canvases (square, landscape, portrait), blur and compression (x264 at CRF 18 to 38) vary.
Every clip is encoded to MP4 and read back through the modality's ``load`` and ``preprocess``, exactly as a
user's attachment is. Three shape-direction combinations (:data:`HELD_OUT`) never appear in ``train``, ``val``
or ``test``; the ``test_heldout`` split holds only them.

Each item carries its question, its answer (``caption``) and its class (``label``):

- ``video:directions``: moving clips, "Which way is the object moving?", ``"It is moving left."``;
- ``video:shapes``: the same clips, "What shape is moving?", ``"A circle is moving."``;
- ``video:events``: every clip, "What happens in the video?", ``"A red circle moves left quickly."``;
- ``video:counts``: clips whose objects stay on screen, "How many objects are there?";
- ``video:motion``: every question of every clip in one data set (items of one clip share its signal):
  what the bundled adapter is trained on.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .labels import (COLORS, COUNT_QUESTION, COUNT_WORDS, DIRECTION_QUESTION, DIRECTIONS, EVENT_QUESTION, EVENTS,
                     HELD_OUT, MIX_LABELS, SHAPE_QUESTION, SHAPES, SIZES, SPEEDS, count_answer, direction_answer,
                     shape_answer)
from .modality import VideoModality

__all__ = ["Clip", "ClipSplit", "random_clip", "render_clip", "encode_mp4", "build_directions", "build_shapes", "build_events",
           "build_counts", "build_motion", "FPS", "SOURCE_FRAMES"]

#: Frames a second of the generated clips, and frames per clip (2 s).
FPS, SOURCE_FRAMES = 8, 16
# Even sides: H.264 in yuv420p needs them.
_CANVASES = ((160, 160), (224, 224), (256, 192), (192, 256), (240, 160), (160, 240))
_DISTANCE = {"slowly": 0.25, "quickly": 0.5}  # of the canvas side along the motion
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass(frozen=True)
class Clip:
    """One generated clip: its event, the object it is about, the still objects, and how it is rendered."""

    event: str  # one of EVENTS
    shape: str
    color: str
    start: tuple[float, float]  # centre of the object in the first frame (fractions of the canvas)
    end: tuple[float, float]  # ... and in the last
    size: float  # fraction of the shorter side
    direction: str | None  # for "moving"
    speed: str | None  # for "moving"
    new_color: str | None  # for "changing color"
    others: tuple[Any, ...]  # still objects (anymal_plugin_image.Shape)
    width: int
    height: int
    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    blur: float
    crf: int

    @property
    def count(self) -> int:
        """Objects on screen when the object of the event is too."""
        return 1 + len(self.others)

    def caption(self) -> str:
        """What happens, known by construction: ``"A red circle moves left quickly."``."""
        thing = f"{self.color} {self.shape}"
        if self.event == "moving":
            return f"A {thing} moves {self.direction} {self.speed}."
        if self.event == "appearing":
            return f"A {thing} appears."
        if self.event == "disappearing":
            return f"A {thing} disappears."
        return f"A {thing} turns {self.new_color}."


def _combos(split: str) -> list[tuple[str, str]]:
    held = split == "test_heldout"
    return [(s, d) for s in SHAPES for d in DIRECTIONS if ((s, d) in HELD_OUT) == held]


def random_clip(rng: random.Random, event: str, shape: str, direction: str | None = None, others: int = 0) -> Clip:
    """A clip of ``event`` about a ``shape`` (moving in ``direction`` for ``"moving"``), with ``others`` still
    shapes that never overlap its path."""
    from anymal_plugin_image import Shape

    width, height = rng.choice(_CANVASES)
    side = min(width, height)
    size = rng.uniform(0.16, 0.28)
    r = size * side / 2
    margin_x, margin_y = r / width + 0.02, r / height + 0.02
    speed = new_color = None
    color = rng.choice(COLORS)
    if event == "moving":
        speed = rng.choice(SPEEDS)
        dx, dy = _STEP[direction]  # type: ignore[index]
        travel = _DISTANCE[speed]
        # the start is drawn so that the whole path stays on the canvas
        x0 = rng.uniform(margin_x + max(0, -dx) * travel, 1 - margin_x - max(0, dx) * travel)
        y0 = rng.uniform(margin_y + max(0, -dy) * travel, 1 - margin_y - max(0, dy) * travel)
        start, end = (x0, y0), (x0 + dx * travel, y0 + dy * travel)
    else:
        start = end = (rng.uniform(margin_x, 1 - margin_x), rng.uniform(margin_y, 1 - margin_y))
        if event == "changing color":
            new_color = rng.choice([c for c in COLORS if c != color])
    path = [(start[0] + (end[0] - start[0]) * k / 8, start[1] + (end[1] - start[1]) * k / 8) for k in range(9)]
    still: list[Any] = []
    tries = 0
    while len(still) < others and tries < 500:
        tries += 1
        o_size = rng.uniform(0.12, 0.22)
        o_r = o_size * side / 2
        x = rng.uniform(o_r / width + 0.02, 1 - o_r / width - 0.02)
        y = rng.uniform(o_r / height + 0.02, 1 - o_r / height - 0.02)
        clear_path = all(math.hypot((x - px) * width, (y - py) * height) > r + o_r + 6 for px, py in path)
        clear_others = all(math.hypot((x - o.x) * width, (y - o.y) * height) > o_r + o.size * side / 2 + 4
                           for o in still)
        if clear_path and clear_others:
            still.append(Shape(rng.choice(SHAPES), rng.choice(COLORS), x, y, o_size))
    tone = rng.randint(150, 250)
    top = tuple(min(255, max(0, tone + rng.randint(-12, 12))) for _ in range(3))
    if rng.random() < 0.5:
        bottom = top
    else:
        dark = rng.randint(60, 140)
        bottom = tuple(min(255, max(0, dark + rng.randint(-12, 12))) for _ in range(3))
    return Clip(event, shape, color, start, end, size, direction, speed, new_color, tuple(still), width, height,
                (top, bottom), rng.choice((0.0, 0.0, 0.8)), rng.choice((18, 23, 28, 33, 38)))  # type: ignore[arg-type]


def render_clip(clip: Clip, seed: int = 0) -> np.ndarray:
    """``[SOURCE_FRAMES, H, W, 3]`` uint8 frames of ``clip``."""
    from anymal_plugin_image import Scene, Shape, draw_scene

    frames = []
    switch = SOURCE_FRAMES // 2  # the frame an object appears, disappears or changes colour at
    for k in range(SOURCE_FRAMES):
        f = k / (SOURCE_FRAMES - 1)
        x = clip.start[0] + (clip.end[0] - clip.start[0]) * f
        y = clip.start[1] + (clip.end[1] - clip.start[1]) * f
        color = clip.new_color if clip.event == "changing color" and k >= switch else clip.color
        subject = Shape(clip.shape, color, x, y, clip.size)
        shown = not ((clip.event == "appearing" and k < switch) or (clip.event == "disappearing" and k >= switch))
        objects = (*clip.others, subject) if shown else clip.others  # the subject last: the others' colours hold
        scene = Scene(tuple(objects), clip.width, clip.height, clip.background, clip.blur, None)
        frames.append(np.asarray(draw_scene(scene, random.Random(seed))))
    return np.stack(frames)


def encode_mp4(frames: np.ndarray, fps: int = FPS, crf: int = 23) -> bytes:
    """``[T, H, W, 3]`` uint8 -> the bytes of an H.264 MP4 (PyAV), at ``crf`` (18 near-lossless, 38 blocky)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Preprocessing is thousands of small tensor ops, which torch would spread over every core, each op
    paying a thread hand-off: one thread is several times faster on a small machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check_split(split: str, name: str, held_out: bool = True) -> None:
    splits = [s for s in SIZES if held_out or s != "test_heldout"]
    if split not in splits:
        raise ValueError(f"unknown split {split!r} of {name}: use one of {', '.join(splits)}")


def _plan(split: str, seed: int, limit: int | None) -> list[tuple[Clip, int]]:
    """The clips of ``split``, each with its render seed: every random draw, none of the rendering.

    ``test_heldout`` holds moving clips of the held-out combinations only; the other splits are 70% moving
    clips (balanced over the seen shape-direction combinations), 10% each of the other events. The same split
    and seed give the same clips to every data set."""
    rng = random.Random(f"video-{split}-{seed}")
    combos = _combos(split)
    plan = []
    for i in range(min(SIZES[split], limit or SIZES[split])):
        draw = i % 10
        if split == "test_heldout" or draw < 7:
            shape, direction = combos[i % len(combos)]
            event = "moving"
        else:
            event, shape, direction = EVENTS[draw - 6], rng.choice(SHAPES), None
        clip = random_clip(rng, event, shape, direction, others=rng.choice((0, 0, 1, 2)))
        plan.append((clip, rng.randrange(1 << 30)))
    return plan


class ClipSplit(Sequence):
    """A split whose items are made on first access: a clip is rendered, encoded to MP4, and read back through
    ``load`` and ``preprocess`` the first time one of its items is asked for, then kept.

    A preprocessed clip is 8 frames of 224 x 224 x 3 floats (4.8 MB), so building a whole split up front would
    cost gigabytes for checks that look at a few items. Kept once made, a clip's signal is one object that all
    of its items share (the trainer's feature cache then encodes it once) and that is the same on every access.
    """

    def __init__(self, plan: list[tuple[Clip, int]], entries: list[tuple[int, str, str, str]],
                 options: Mapping[str, Any]) -> None:
        self._plan = plan
        self._entries = entries  # (clip index, question, answer, label) per item
        self._options = dict(options)
        self._signals: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} of a split of {len(self)}")
        at, question, answer, label = self._entries[index]
        clip = self._plan[at][0]
        held = clip.direction is not None and (clip.shape, clip.direction) in HELD_OUT
        return {"signal": self._signal(at), "question": question, "caption": answer, "label": label,
                "description": clip.caption(), "held_out": held}

    def _signal(self, at: int) -> torch.Tensor:
        if at not in self._signals:
            clip, seed = self._plan[at]
            modality = VideoModality()
            load_options = {k: self._options[k] for k in ("frames", "fps", "max_frames") if k in self._options}
            with _one_thread():
                data = encode_mp4(render_clip(clip, seed=seed), crf=clip.crf)
                self._signals[at] = modality.preprocess(modality.load(data, **load_options), **self._options)
        return self._signals[at]


def _split(split: str, seed: int, limit: int | None, options: Mapping[str, Any],
           ask: Callable[[Clip], list[tuple[str, str, str]]]) -> ClipSplit:
    """The items ``ask`` makes of each clip of ``split``: ``(question, answer, label)`` each (none to skip)."""
    plan = _plan(split, seed, limit)
    entries = [(at, *qa) for at, (clip, _) in enumerate(plan) for qa in ask(clip)]
    return ClipSplit(plan, entries, options)


def build_directions(split: str, seed: int = 0, limit: int | None = None, **options: Any) -> ClipSplit:
    """``video:directions``: the moving clips, asked :data:`DIRECTION_QUESTION`; label the direction.
    ``limit`` plans the first ``limit`` clips only (quick checks); ``options`` are the preprocessing options."""
    _check_split(split, "video:directions")
    return _split(split, seed, limit, options, lambda c: [
        (DIRECTION_QUESTION, direction_answer(c.direction), c.direction)] if c.event == "moving" else [])


def build_shapes(split: str, seed: int = 0, limit: int | None = None, **options: Any) -> ClipSplit:
    """``video:shapes``: the moving clips, asked :data:`SHAPE_QUESTION`; label the moving shape."""
    _check_split(split, "video:shapes")
    return _split(split, seed, limit, options, lambda c: [
        (SHAPE_QUESTION, shape_answer(c.shape), c.shape)] if c.event == "moving" else [])


def build_events(split: str, seed: int = 0, limit: int | None = None, **options: Any) -> ClipSplit:
    """``video:events``: every clip, asked :data:`EVENT_QUESTION`; the caption says what happens, label the
    event."""
    _check_split(split, "video:events", held_out=False)
    return _split(split, seed, limit, options, lambda c: [(EVENT_QUESTION, c.caption(), c.event)])


def build_counts(split: str, seed: int = 0, limit: int | None = None, **options: Any) -> ClipSplit:
    """``video:counts``: the clips whose objects stay on screen (moving, changing colour), asked
    :data:`COUNT_QUESTION`; label the count word."""
    _check_split(split, "video:counts", held_out=False)
    return _split(split, seed, limit, options, lambda c: [
        (COUNT_QUESTION, count_answer(c.count), COUNT_WORDS[c.count - 1])]
        if c.event in ("moving", "changing color") else [])


def build_motion(split: str, seed: int = 0, limit: int | None = None, **options: Any) -> ClipSplit:
    """``video:motion``, what the bundled adapter is trained on: every clip asked each question that fits it
    (direction and shape for moving clips, what happens for all, how many where the count holds), each an item
    that shares the clip's signal. Labels are those of :data:`MIX_LABELS`, read off each answer."""
    _check_split(split, "video:motion", held_out=False)
    from anymal_host.evaluation.labels import label_matcher

    label_of = label_matcher(MIX_LABELS)

    def ask(clip: Clip) -> list[tuple[str, str, str]]:
        asked = [(EVENT_QUESTION, clip.caption())]
        if clip.event == "moving":
            asked += [(DIRECTION_QUESTION, direction_answer(clip.direction)),  # type: ignore[arg-type]
                      (SHAPE_QUESTION, shape_answer(clip.shape))]
        if clip.event in ("moving", "changing color"):
            asked.append((COUNT_QUESTION, count_answer(clip.count)))
        return [(q, a, label_of(a) or "") for q, a in asked]

    return _split(split, seed, limit, options, ask)
