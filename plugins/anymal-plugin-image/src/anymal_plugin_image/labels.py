"""The classes, questions and answer parsers of the image data sets: plain Python, no numpy or torch, so that
registering the data sets (``anymal --help`` loads every plugin) stays cheap."""

from __future__ import annotations

import re

__all__ = ["SHAPES", "COLORS", "PAIRS", "HELD_OUT", "SEEN_PAIRS", "COUNT_WORDS", "DIGIT_WORDS", "SHAPE_QUESTION",
           "COLOR_QUESTION", "COUNT_QUESTION", "DIGIT_QUESTION", "DESCRIBE_QUESTION", "MIX_QUESTIONS", "MIX_LABELS",
           "SHAPES_SIZES", "COUNTS_SIZES", "COUNT_STREAMS", "shape_answer", "color_answer", "count_answer",
           "digit_answer",
           "pair_from_text", "shape_from_text", "color_from_text", "count_from_text", "digit_from_text"]

SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
#: Colour-shape pairs kept out of train/val/test, one per shape (and three of the four colours).
HELD_OUT = (("green", "circle"), ("blue", "square"), ("yellow", "triangle"))
#: Every colour-shape pair, as the label ``"<color> <shape>"``.
PAIRS = tuple(f"{c} {s}" for c in COLORS for s in SHAPES)
SEEN_PAIRS = tuple(p for p in PAIRS if tuple(p.split()) not in HELD_OUT)
COUNT_WORDS = ("one", "two", "three", "four")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

SHAPE_QUESTION = "What shape is in the image?"
COLOR_QUESTION = "What color is the shape?"
COUNT_QUESTION = "How many shapes are there?"
DIGIT_QUESTION = "What digit is this?"
DESCRIBE_QUESTION = "Describe the image."
#: Every question the plugin's adapter is trained to answer (``image:mix`` asks each item one of them).
MIX_QUESTIONS = (SHAPE_QUESTION, COLOR_QUESTION, COUNT_QUESTION, DIGIT_QUESTION, DESCRIBE_QUESTION)
#: The classes of ``image:mix``: each task's answers, read as the class named earliest in the answer (the
#: longer name on a tie, so "A red circle." is ``"red circle"``, not ``"red"``). Digits are numerals and counts
#: words, so the two never collide.
MIX_LABELS = SHAPES + COLORS + PAIRS + COUNT_WORDS + tuple("0123456789")
#: Items per split. Each split has its own random stream, so no scene is in two splits.
SHAPES_SIZES = {"train": 1200, "val": 120, "test": 180, "test_heldout": 90}
COUNTS_SIZES = {"train": 1200, "val": 120, "test": 200}
#: Random streams of counting scenes in ``image:counts-many``' train split.
COUNT_STREAMS = 4


def shape_answer(shape: str) -> str:
    """The answer to :data:`SHAPE_QUESTION`: ``"It is a circle."``."""
    return f"It is a {shape}."


def color_answer(color: str) -> str:
    """The answer to :data:`COLOR_QUESTION`: ``"It is red."``."""
    return f"It is {color}."


def count_answer(count: int) -> str:
    """The answer to :data:`COUNT_QUESTION`: ``"There is one shape."`` / ``"There are three shapes."``."""
    return "There is one shape." if count == 1 else f"There are {COUNT_WORDS[count - 1]} shapes."


def digit_answer(digit: int) -> str:
    """The answer to :data:`DIGIT_QUESTION`: ``"It is the digit 7."``."""
    return f"It is the digit {digit}."


_PAIR = re.compile(r"\b(" + "|".join(COLORS) + r")\s+(" + "|".join(SHAPES) + r")s?\b")
_COUNT = re.compile(r"\b(one|two|three|four|[1-4])\s+(?:\w+\s+)?(?:shapes?|objects?|circles?|squares?|triangles?)\b")
_DIGIT = re.compile(r"\b([0-9]|" + "|".join(DIGIT_WORDS) + r")\b")


def pair_from_text(text: str) -> str | None:
    """The first ``"<color> <shape>"`` in ``text`` (``"It is a Red circle."`` -> ``"red circle"``), or None."""
    found = _PAIR.search(text.lower())
    return f"{found.group(1)} {found.group(2)}" if found else None


_SHAPE = re.compile(r"\b(" + "|".join(SHAPES) + r")s?\b")
_COLOR = re.compile(r"\b(" + "|".join(COLORS) + r")\b")


def shape_from_text(text: str) -> str | None:
    """The first shape named in ``text`` (``"It is a Triangle."`` -> ``"triangle"``), or None."""
    found = _SHAPE.search(text.lower())
    return found.group(1) if found else None


def color_from_text(text: str) -> str | None:
    """The first colour named in ``text`` (``"It is blue."`` -> ``"blue"``), or None."""
    found = _COLOR.search(text.lower())
    return found.group(1) if found else None


def count_from_text(text: str) -> str | None:
    """The count word of ``"There are three shapes"`` or ``"3 shapes"``; a lone ``"A red circle."`` is one."""
    lowered = text.lower()
    found = _COUNT.search(lowered)
    if found:
        word = found.group(1)
        return COUNT_WORDS[int(word) - 1] if word.isdigit() else word
    if _PAIR.search(lowered) and len(_PAIR.findall(lowered)) == 1:
        return "one"
    return None


def digit_from_text(text: str) -> str | None:
    """The first digit in ``text``, as ``"0"``-``"9"`` (``"the digit seven"`` -> ``"7"``), or None."""
    found = _DIGIT.search(text.lower())
    if not found:
        return None
    word = found.group(1)
    return word if word.isdigit() else str(DIGIT_WORDS.index(word))
