"""Questions, answers and classes of the video data sets: constants and text parsers only (no numpy, no
torch), so that registering the data sets costs nothing."""

from __future__ import annotations

import functools
from typing import Callable

__all__ = ["DIRECTIONS", "SPEEDS", "EVENTS", "SHAPES", "COLORS", "COUNT_WORDS", "HELD_OUT", "DIRECTION_QUESTION",
           "SHAPE_QUESTION", "EVENT_QUESTION", "COUNT_QUESTION", "MIX_QUESTIONS", "MIX_LABELS", "SIZES",
           "direction_answer", "shape_answer", "count_answer", "direction_from_text", "shape_from_text",
           "event_from_text", "count_from_text"]

DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = ("slowly", "quickly")
#: What happens in a clip: one object moves, appears, disappears or changes colour.
EVENTS = ("moving", "appearing", "disappearing", "changing color")
# The image plugin's shapes and colours (its public API names them too; repeated here so that registering
# the data sets does not import the image plugin).
SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
COUNT_WORDS = ("one", "two", "three")
#: Shape-direction combinations no training clip shows; the ``test_heldout`` split holds only them.
HELD_OUT = (("triangle", "left"), ("square", "up"), ("circle", "down"))

DIRECTION_QUESTION = "Which way is the object moving?"
SHAPE_QUESTION = "What shape is moving?"
EVENT_QUESTION = "What happens in the video?"
COUNT_QUESTION = "How many objects are there?"
#: Every question the bundled adapter is trained to answer.
MIX_QUESTIONS = (DIRECTION_QUESTION, SHAPE_QUESTION, EVENT_QUESTION, COUNT_QUESTION)
#: Classes of ``video:motion`` (every task at once), read as the class named earliest in an answer: a training
#: monitor. Each task's own data set has its own parser, which ``anymal eval`` uses.
MIX_LABELS = DIRECTIONS + SHAPES + COUNT_WORDS
#: Clips per split (each clip is asked up to four questions). Each split has its own random stream.
SIZES = {"train": 1000, "val": 80, "test": 160, "test_heldout": 90}


def direction_answer(direction: str) -> str:
    return f"It is moving {direction}."


def shape_answer(shape: str) -> str:
    return f"A {shape} is moving."


def count_answer(count: int) -> str:
    return "There is one object." if count == 1 else f"There are {COUNT_WORDS[count - 1]} objects."


# The words each parser recognises, and the class each names. Plurals and variants included.
_WORDS = {
    "direction": {**{d: d for d in DIRECTIONS}, "leftward": "left", "leftwards": "left", "rightward": "right",
                  "rightwards": "right", "upward": "up", "upwards": "up", "downward": "down", "downwards": "down"},
    "shape": {**{s: s for s in SHAPES}, **{f"{s}s": s for s in SHAPES}},
    "event": {"moves": "moving", "moving": "moving", "appears": "appearing", "appearing": "appearing",
              "disappears": "disappearing", "disappearing": "disappearing", "vanishes": "disappearing",
              "turns": "changing color", "changes": "changing color", "changing": "changing color"},
    "count": {**{w: w for w in COUNT_WORDS}, **{str(i + 1): w for i, w in enumerate(COUNT_WORDS)}},
}


@functools.lru_cache(maxsize=None)
def _matcher(kind: str) -> Callable[[str], str | None]:
    # The host's rule (the word named earliest, as a whole word; the longer on a tie), imported on the first
    # parse: registering the data sets must not import the evaluation package.
    from anymal_host.evaluation.labels import label_matcher

    return label_matcher(tuple(_WORDS[kind]))


def _parse(kind: str, text: str) -> str | None:
    word = _matcher(kind)(text)
    return _WORDS[kind][word] if word is not None else None


def direction_from_text(text: str) -> str | None:
    """``"It is moving left."`` -> ``"left"``; also "leftwards", "to the left", "upward", "downwards"."""
    return _parse("direction", text)


def shape_from_text(text: str) -> str | None:
    """``"A circle is moving."`` -> ``"circle"`` (plurals too)."""
    return _parse("shape", text)


def event_from_text(text: str) -> str | None:
    """``"A red circle moves left quickly."`` -> ``"moving"``; "appears" -> ``"appearing"``; "disappears" or
    "vanishes" -> ``"disappearing"``; "turns green" or "changes color" -> ``"changing color"``."""
    return _parse("event", text)


def count_from_text(text: str) -> str | None:
    """``"There are two objects."`` -> ``"two"``; numerals count too (``"2"`` -> ``"two"``)."""
    return _parse("count", text)
