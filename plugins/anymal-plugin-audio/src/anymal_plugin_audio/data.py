"""The ``audio:demo`` data set: generated recordings whose trend is rising, falling or flat, each captioned.

It is small and synthetic so that the plugin trains and tests offline in seconds. Replace it with real
recordings; keep what makes it trustworthy (see the README): items hold ``preprocess(load(x))`` exactly as
chat will compute it, captions name the label that ``label_from_text`` reads back, and the splits never share
a source.
"""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np

from .modality import WINDOW, AudioModality

__all__ = ["LABELS", "CAPTIONS", "QUESTIONS", "SIZES", "build_demo", "demo_readings", "label_from_text"]

#: The classes of the demo task, in the order evaluation's confusion matrix shows them.
LABELS = ("rising", "falling", "flat")
#: Several phrasings per class, so that the adapter learns the trend rather than one sentence. Each names its
#: class word, which ``label_from_text`` reads back.
CAPTIONS = (
    "The readings are {label}.",
    "This audio recording is {label}.",
    "The signal is {label} over the whole window.",
)
#: Questions paired with a recording for training; the first is the one evaluation asks.
QUESTIONS = (
    "What is the trend of this audio recording?",
    "Are the readings rising, falling or flat?",
    "Describe this audio recording.",
)
#: Items per split. Each split is drawn from its own random stream, so no recording is in two splits.
SIZES = {"train": 96, "val": 24, "test": 24}

_LABEL_WORDS = re.compile(r"\b(" + "|".join(LABELS) + r")\b")


def label_from_text(text: str) -> str | None:
    """The first class word in ``text`` (``"It is rising."`` -> ``"rising"``), or None when it names none."""
    found = _LABEL_WORDS.search(text.lower())
    return found.group(1) if found else None


def demo_readings(label: str, rng: np.random.Generator, length: int = WINDOW) -> np.ndarray:
    """``length`` raw readings of the trend ``label``: a random level, a slope of 0.3-0.6 a reading up or down
    (none when flat), and noise."""
    slope = {"rising": 1.0, "falling": -1.0, "flat": 0.0}[label] * rng.uniform(0.3, 0.6)
    start = rng.uniform(-5.0, 5.0)
    return start + slope * np.arange(length) + rng.normal(0.0, 0.2, length)


def build_demo(split: str, seed: int = 0, **options: Any) -> list[dict[str, Any]]:
    """The items of ``split``: ``{"signal": preprocessed [WINDOW, 1] tensor, "caption", "label"}``, classes
    balanced. ``seed`` varies the draw; other options (the trainer's) are ignored."""
    if split not in SIZES:
        raise ValueError(f"unknown split {split!r} of audio:demo: use one of {', '.join(SIZES)}")
    rng = np.random.default_rng([list(SIZES).index(split), seed])
    captions = random.Random(f"{split}-{seed}")
    modality = AudioModality()
    items = []
    for i in range(SIZES[split]):
        label = LABELS[i % len(LABELS)]
        # Through load and preprocess, exactly as chat will see a user's recording.
        signal = modality.preprocess(modality.load(demo_readings(label, rng)))
        items.append({"signal": signal, "caption": captions.choice(CAPTIONS).format(label=label), "label": label})
    return items
