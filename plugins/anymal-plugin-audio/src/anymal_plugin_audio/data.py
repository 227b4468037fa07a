"""The data sets ``audio:speech`` (eSpeak NG words and digits) and ``audio:sounds`` (numpy-made sounds).

No labelled audio-clip set ships in any package this project may use, so both are made here, with labels known
by construction:

- **speech**: the ten digits and ten command words, spoken by eSpeak NG in several voices, speeds and pitches,
  with white noise at a random signal-to-noise ratio and a random lead-in. Splits are by voice: the test
  voices are never heard in training (nor in validation), so the test score measures speakers it has not met.
- **sounds**: steady high and low tones, one to four beeps, rising and falling chirps, white noise, silence.
  Each split draws from its own random stream.

Each item is ``preprocess(load((samples, rate)))``, exactly what chat computes for a user's clip, and is made
lazily from ``(split, seed, index)`` alone, so a run that reads a few items synthesizes only those, and any
item is the same however the split is read.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any, Callable, overload

import numpy as np

from .modality import AudioModality

__all__ = ["DIGITS", "WORDS", "SPEECH_LABELS", "SOUND_LABELS", "VOICES", "SPEECH_SIZES", "SOUND_SIZES",
           "SPEECH_QUESTIONS", "SOUND_QUESTIONS", "MIX_QUESTIONS", "build_speech", "build_sounds", "build_digits", "build_mix",
           "speech_label", "sound_label", "mix_label", "ConcatSplit", "SubsetSplit",
           "synthesize", "make_sound", "EspeakMissingError"]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Ten command words, after the Speech Commands vocabulary.
WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go", "on", "off")
SPEECH_LABELS = DIGITS + WORDS
#: eSpeak NG voices (language + variant) per split. The test and validation voices are held out: training
#: never hears them.
VOICES: dict[str, tuple[str, ...]] = {
    "train": ("en-us+m1", "en-us+m3", "en-us+f1", "en-us+f3", "en+m2", "en+f2", "en-gb-scotland+m4", "en-029+f4"),
    "val": ("en-us+m5", "en+f5"),
    "test": ("en-us+m7", "en-gb-x-rp+f2"),
}
#: Words per minute and pitch (0-99) that synthesis draws from.
SPEEDS = (120, 150, 180)
PITCHES = (30, 50, 70)
#: Clips per label and voice: 20 labels x 8 voices x 5 = 800 train, 20 x 2 x 2 = 80 val and 80 test.
_SPEECH_TAKES = {"train": 5, "val": 2, "test": 2}
SPEECH_SIZES = {split: len(SPEECH_LABELS) * len(VOICES[split]) * takes for split, takes in _SPEECH_TAKES.items()}

SOUND_LABELS = ("high tone", "low tone", "one beep", "two beeps", "three beeps", "four beeps", "rising chirp",
                "falling chirp", "white noise", "silence")
SOUND_SIZES = {"train": 1000, "val": 60, "test": 60}

#: Questions valid for every item of the set (training picks one at random per item, whatever its class).
SPEECH_QUESTIONS = ("What word is said?", "What is said in this recording?", "Which word or number do you hear?")
SOUND_QUESTIONS = ("Describe the sound.", "What do you hear?", "What is in this recording?")
#: The task-specific questions, kept on each item as ``item["questions"]``: training asks each item one of its
#: own (so "How many beeps are there?" is never asked of a chirp), evaluation the first.
_TASK_QUESTIONS = {
    "digit": ("What number is spoken?",), "word": ("What word is said?",),
    "tone": ("Is the tone high or low?", "Describe the sound."),
    "beeps": ("How many beeps are there?", "Describe the sound."),
    "chirp": ("Is the pitch rising or falling?", "Describe the sound."),
    "other": ("Describe the sound.",),
}

#: Every question the bundled adapter is trained on (``audio:mix``).
MIX_QUESTIONS = ("What number is spoken?", "What word is said?", "Is the tone high or low?",
                 "How many beeps are there?", "Is the pitch rising or falling?", "Describe the sound.")

_SPEECH_CAPTIONS = {
    "digit": ("The number {label} is spoken.", "Someone says the number {label}.", "The spoken number is {label}."),
    "word": ("The word {label} is said.", "Someone says the word {label}.", "The spoken word is {label}."),
}
_SOUND_TEXT = {"high tone": "a steady high tone", "low tone": "a steady low tone", "one beep": "one beep",
               "two beeps": "two beeps", "three beeps": "three beeps", "four beeps": "four beeps",
               "rising chirp": "a rising chirp", "falling chirp": "a falling chirp", "white noise": "white noise",
               "silence": "silence"}
_SOUND_CAPTIONS = ("The clip holds {text}.", "I hear {text}.", "This recording contains {text}.")

_RATE = 16_000  # sounds are made at the encoder's rate; speech comes at eSpeak NG's 22,050 Hz and is resampled
_SPEECH_PATTERN = re.compile(r"\b(" + "|".join(SPEECH_LABELS) + r")\b")
_NUMERALS = {"1": "one", "2": "two", "3": "three", "4": "four"}
_SOUND_PATTERN = re.compile(r"\b(" + "|".join(sorted(SOUND_LABELS, key=len, reverse=True))
                            + r"|[1-4] beeps?|high|low|rising|falling|noise|silent)\b")


class EspeakMissingError(RuntimeError):
    """eSpeak NG is not installed; the message gives the install line."""


def speech_label(text: str) -> str | None:
    """The first digit or command word in ``text`` (``"The word stop is said."`` -> ``"stop"``), or None."""
    found = _SPEECH_PATTERN.search(text.lower())
    return found.group(1) if found else None


def sound_label(text: str) -> str | None:
    """The first sound class named in ``text``: ``"I hear 3 beeps"`` -> ``"three beeps"``, ``"a high
    tone"`` -> ``"high tone"``, ``"it is silent"`` -> ``"silence"``; None when it names none."""
    found = _SOUND_PATTERN.search(text.lower())
    if not found:
        return None
    word = found.group(1)
    if word[0].isdigit():
        count = _NUMERALS[word[0]]
        return f"{count} beep" if count == "one" else f"{count} beeps"
    return {"high": "high tone", "low": "low tone", "rising": "rising chirp", "falling": "falling chirp",
            "noise": "white noise", "silent": "silence"}.get(word, word)


def synthesize(text: str, voice: str = "en-us", speed: int = 150, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG; return ``(float32 samples, sample rate)`` (22,050 Hz mono)."""
    import soundfile

    binary = shutil.which("espeak-ng")
    if binary is None:
        raise EspeakMissingError("audio:speech synthesizes speech with eSpeak NG, which is not installed: "
                                 "apt-get install -y espeak-ng (Debian/Ubuntu) or brew install espeak-ng (macOS)")
    # argv, not a shell: the text is passed as one argument; "--" ends the options, so text cannot be one.
    result = subprocess.run([binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", "--", text],
                            capture_output=True, timeout=60, check=False)
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {result.stderr.decode(errors='replace')[:200]}")
    # eSpeak NG streams a WAV whose header sizes are 0xFFFFFFFF (it cannot seek stdout); libsndfile reads it.
    samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    return samples, rate


def _add_noise(samples: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    power = float(np.mean(samples.astype(np.float64) ** 2)) or 1e-8
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), samples.shape)
    return (samples + noise).astype(np.float32)


def _speech_item(split: str, seed: int, index: int, modality: AudioModality) -> dict[str, Any]:
    voices = VOICES[split]
    label = SPEECH_LABELS[index % len(SPEECH_LABELS)]
    voice = voices[(index // len(SPEECH_LABELS)) % len(voices)]
    rng = np.random.default_rng([0, list(VOICES).index(split), seed, index])
    speed, pitch = int(rng.choice(SPEEDS)), int(rng.choice(PITCHES))
    samples, rate = synthesize(label, voice, speed, pitch)
    lead = np.zeros(int(rng.uniform(0.0, 0.4) * rate), dtype=np.float32)  # the word is not always at the start
    samples = _add_noise(np.concatenate([lead, samples]), rng, snr_db=float(rng.uniform(10.0, 30.0)))
    samples = np.clip(samples, -1.0, 1.0)
    kind = "digit" if label in DIGITS else "word"
    caption = _SPEECH_CAPTIONS[kind][int(rng.integers(len(_SPEECH_CAPTIONS[kind])))].format(label=label)
    signal = modality.preprocess(modality.load((samples, rate)))
    return {"signal": signal, "caption": caption, "label": label, "questions": _TASK_QUESTIONS[kind],
            "voice": voice, "speed": speed, "pitch": pitch}


def make_sound(label: str, rng: np.random.Generator) -> np.ndarray:
    """One clip of the sound class ``label`` at 16 kHz, float32 in [-1, 1], 0.6-2.5 s with a random lead-in."""
    if label not in SOUND_LABELS:
        raise ValueError(f"unknown sound {label!r}: one of {', '.join(SOUND_LABELS)}")
    amplitude = rng.uniform(0.1, 0.7)
    lead = np.zeros(int(rng.uniform(0.0, 0.5) * _RATE), dtype=np.float64)

    def tone(freq: float, seconds: float) -> np.ndarray:
        t = np.arange(int(seconds * _RATE)) / _RATE
        ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms fades: no click at the edges
        return amplitude * ramp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))

    if label in ("high tone", "low tone"):
        body = tone(rng.uniform(1500, 3000) if label == "high tone" else rng.uniform(150, 400), rng.uniform(0.6, 2.0))
    elif label.endswith(("beep", "beeps")):
        count = SOUND_LABELS.index(label) - 1  # "one beep" is index 2
        freq, length, gap = rng.uniform(600, 1200), rng.uniform(0.08, 0.2), rng.uniform(0.12, 0.3)
        parts = []
        for _ in range(count):
            parts += [tone(freq, length), np.zeros(int(gap * _RATE))]
        body = np.concatenate(parts)
    elif label.endswith("chirp"):
        seconds = rng.uniform(0.8, 2.0)
        low, high = rng.uniform(200, 400), rng.uniform(1600, 3000)
        start, end = (low, high) if label == "rising chirp" else (high, low)
        t = np.arange(int(seconds * _RATE)) / _RATE
        # exponential sweep: the pitch (log frequency) changes at a constant rate, as heard
        k = np.log(end / start) / seconds
        body = amplitude * np.sin(2 * np.pi * start * (np.exp(k * t) - 1) / k)
        body *= np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    elif label == "white noise":
        body = rng.normal(0.0, amplitude / 3, int(rng.uniform(0.6, 2.0) * _RATE))
    else:  # silence: a real recording's silence is never all zeros; a faint noise floor around -70 dBFS
        body = rng.normal(0.0, 3e-4, int(rng.uniform(0.6, 2.0) * _RATE))
    clip = np.concatenate([lead, body, np.zeros(int(rng.uniform(0.05, 0.3) * _RATE))])
    if label != "silence":
        clip = clip + rng.normal(0.0, amplitude * 10 ** (-rng.uniform(20, 40) / 20), clip.shape)  # 20-40 dB SNR
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def _sound_item(split: str, seed: int, index: int, modality: AudioModality) -> dict[str, Any]:
    label = SOUND_LABELS[index % len(SOUND_LABELS)]
    rng = np.random.default_rng([1, list(SOUND_SIZES).index(split), seed, index])
    clip = make_sound(label, rng)
    caption = _SOUND_CAPTIONS[int(rng.integers(len(_SOUND_CAPTIONS)))].format(text=_SOUND_TEXT[label])
    kind = "tone" if "tone" in label else "beeps" if "beep" in label else "chirp" if "chirp" in label else "other"
    signal = modality.preprocess(modality.load((clip, _RATE)))
    return {"signal": signal, "caption": caption, "label": label, "questions": _TASK_QUESTIONS[kind]}


class _Split(Sequence):
    """A read-only sequence of items: slicing, negative indices and bounds here; ``_item(i)`` (0 <= i < len)
    in each kind of split."""

    def _item(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} of a split of {len(self)}")
        return self._item(index % len(self))


class LazySplit(_Split):
    """A split whose items are made on first access (and kept): ``make(split, seed, index, modality)``."""

    def __init__(self, make: Callable[..., dict[str, Any]], split: str, seed: int, size: int) -> None:
        self._make, self._split, self._seed, self._size = make, split, seed, size
        self._items: dict[int, dict[str, Any]] = {}
        self._modality = AudioModality()

    def __len__(self) -> int:
        return self._size

    def _item(self, index: int) -> dict[str, Any]:
        if index not in self._items:
            self._items[index] = self._make(self._split, self._seed, index, self._modality)
        return self._items[index]


def _check_split(split: str, sizes: dict[str, int], name: str) -> None:
    if split not in sizes:
        raise ValueError(f"unknown split {split!r} of {name}: use one of {', '.join(sizes)}")


def build_speech(split: str, seed: int = 0, **options: Any) -> LazySplit:
    """``audio:speech``: items ``{"signal" [N, 1], "caption", "label", "questions", "voice", ...}``, labels
    balanced, voices split as :data:`VOICES`. Other options (the trainer's) are ignored."""
    _check_split(split, SPEECH_SIZES, "audio:speech")
    if shutil.which("espeak-ng") is None:  # say so at build time, not at the first item deep inside training
        synthesize("")
    return LazySplit(_speech_item, split, seed, SPEECH_SIZES[split])


def build_sounds(split: str, seed: int = 0, **options: Any) -> LazySplit:
    """``audio:sounds``: items ``{"signal" [N, 1], "caption", "label", "questions"}``, labels balanced."""
    _check_split(split, SOUND_SIZES, "audio:sounds")
    return LazySplit(_sound_item, split, seed, SOUND_SIZES[split])


class ConcatSplit(_Split):
    """Several splits read as one, in order (each still makes its items lazily)."""

    def __init__(self, *parts: Sequence[dict[str, Any]]) -> None:
        self._parts = parts
        self._starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _item(self, index: int) -> dict[str, Any]:
        part = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self._parts[part][index - int(self._starts[part])]


class SubsetSplit(_Split):
    """The items of ``parent`` at ``indices``, in that order (made lazily by the parent)."""

    def __init__(self, parent: Sequence[dict[str, Any]], indices: Sequence[int]) -> None:
        self._parent, self._indices = parent, list(indices)

    def __len__(self) -> int:
        return len(self._indices)

    def _item(self, index: int) -> dict[str, Any]:
        return self._parent[self._indices[index]]


def build_digits(split: str, seed: int = 0, **options: Any) -> SubsetSplit:
    """``audio:digits``: the spoken digits of ``audio:speech`` (the same items), asked "What number is
    spoken?": the digit score on held-out voices, apart from the command words."""
    speech = build_speech(split, seed=seed, **options)
    return SubsetSplit(speech, [i for i in range(len(speech)) if SPEECH_LABELS[i % len(SPEECH_LABELS)] in DIGITS])


def build_mix(split: str, seed: int = 0, **options: Any) -> ConcatSplit:
    """``audio:mix``: ``audio:speech`` then ``audio:sounds``, each item with its own questions: what the bundled
    adapter is trained on, so that one adapter answers about speech and sounds alike."""
    return ConcatSplit(build_speech(split, seed=seed, **options), build_sounds(split, seed=seed, **options))


def mix_label(text: str) -> str | None:
    """The class an answer names, for ``audio:mix``: a sound class first (``"I hear two beeps"`` is two beeps,
    not the digit two), else a digit or word."""
    return sound_label(text) or speech_label(text)


def write_examples(folder: Any) -> list[str]:
    """Write the shipped example clips (8 kHz 16-bit WAV, so ``load`` resamples them): three beeps, a rising
    chirp, a high tone, and "seven" in a held-out test voice. Deterministic."""
    import soundfile
    import soxr
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20_260_110)
    clips = {name: (make_sound(label, rng), _RATE) for name, label in
             (("three_beeps", "three beeps"), ("rising_chirp", "rising chirp"), ("high_tone", "high tone"))}
    speech, rate = synthesize("seven", VOICES["test"][0], 150, 50)
    clips["seven"] = (speech, rate)
    written = []
    for name, (samples, rate) in clips.items():
        loud = np.flatnonzero(np.abs(samples) > 0.02)  # trim the lead-in and tail: a few KB each
        samples = samples[max(0, loud[0] - rate // 20): loud[-1] + rate // 20]
        low = soxr.resample(samples, rate, 8000)[: int(8000 * 1.5)]
        soundfile.write(folder / f"{name}.wav", low, 8000, subtype="PCM_16")
        written.append(f"{name}.wav")
    return written


def _main() -> None:  # python -m anymal_plugin_audio.data examples
    import sys

    from .modality import EXAMPLES_DIR

    if sys.argv[1:] != ["examples"]:
        raise SystemExit("usage: python -m anymal_plugin_audio.data examples")
    print("wrote", ", ".join(write_examples(EXAMPLES_DIR)))


if __name__ == "__main__":
    _main()
