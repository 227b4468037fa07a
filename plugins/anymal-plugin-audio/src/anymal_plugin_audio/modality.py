"""``AudioModality``: a audio recording is a time series of numbers, one reading per line.

Edit the constants below to your sensor: its rate, its unit and the physical range of one reading. The loader
follows the host's rules for every loader (:mod:`anymal_host.sources`): look at a path before opening it,
refuse by size before reading, accept plain decimal numbers only, refuse values no sensor can produce, and
refuse recordings too short for the encoder. Whatever it is sent, ``load`` returns a valid signal or raises
:class:`anymal_host.InvalidSignalError` saying what is wrong and how to fix it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from anymal_host import Encoder, InvalidSignalError, Modality, SignalSpec
from anymal_host.sources import check_finite_range, check_source_size, open_source_file, parse_decimal

__all__ = ["AudioModality", "EXAMPLES_DIR", "example_path", "SAMPLE_RATE", "UNIT", "LOW", "HIGH", "WINDOW",
           "MIN_READINGS", "MAX_READINGS"]

#: Readings per second. The loader does not resample: recordings must come at this rate.
SAMPLE_RATE = 1.0
#: The unit of one reading, as error messages name it.
UNIT = "units"
#: The physical range of one reading. A value outside it is nearly always a unit mix-up, so it is refused.
LOW, HIGH = -1000.0, 1000.0
#: Readings the encoder sees: ``preprocess`` keeps the last ``WINDOW`` of a longer recording.
WINDOW = 32
#: The shortest recording: two encoder steps (the encoder's stride is 4), so that it holds a trend.
MIN_READINGS = 8
#: The longest recording (a day at 1 Hz). Longer ones are refused before they are read: cut them first.
MAX_READINGS = 86_400
#: A file or bytes source of more than this is refused before one byte is read (32 characters a line).
MAX_BYTES = 32 * MAX_READINGS
#: ``preprocess`` maps a reading x to ``(x - CENTER) / SCALE``. The constants are fixed rather than measured
#: per recording, so that the level of a recording survives preprocessing. Set them to your data's mean and
#: spread.
CENTER, SCALE = 0.0, 10.0

# A line that splits on these into numbers holds several readings; "0,5" alone is a decimal comma instead,
# which parse_decimal explains.
_SEPARATORS = re.compile(r"\s*[,;\t| ]\s*")
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]+,[0-9]+")

#: Recordings shipped with the plugin (package data).
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def example_path(name: str = "rising") -> Path:
    """The shipped example recording ``examples/<name>.audio``."""
    path = EXAMPLES_DIR / f"{name}.audio"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EXAMPLES_DIR.glob("*.audio"))) or "none"
        raise FileNotFoundError(f"no shipped audio example {name!r}: the examples are {known}")
    return path


class AudioModality(Modality):
    """One channel of readings at ``SAMPLE_RATE`` Hz, from a text file with one reading per line.

    ``load`` accepts a path to a ``.audio`` text file (lines starting with ``#`` and blank lines are
    skipped), the bytes of such a file, or a numpy array / torch tensor / list of shape ``[T]`` or ``[T, 1]``.
    It returns ``[T, 1]`` float32. ``preprocess`` keeps the last ``WINDOW`` readings and scales them.
    """

    name = "audio"
    file_extensions = (".audio",)
    media_types = ("text/x-audio",)
    signal_spec = SignalSpec(sample_rate=SAMPLE_RATE, channels=1,
                             description=f"one reading per step in {UNIT}, the last {WINDOW} readings, "
                                         f"(x - {CENTER:g}) / {SCALE:g}")
    description = "Sound clips (speech, tones, beeps) through Whisper tiny.en's encoder, up to 30 seconds at 16 kHz"
    default_encoder = {"name": "audio-conv", "width": 32}

    def load(self, source: Any, **options: Any) -> torch.Tensor:
        """Parse and validate ``source``; return ``[T, 1]`` float32 readings.

        :param options: the adapter's preprocessing options; this modality takes none and ignores them.
        :raises InvalidSignalError: for anything malformed, naming the problem and the fix.
        """
        if isinstance(source, (str, Path)):
            with open_source_file(source, max_bytes=MAX_BYTES, what="audio file") as file:
                values = _parse_text(_decode(file.read(MAX_BYTES + 1), f"audio file {str(source)!r}"),
                                     f"audio file {str(source)!r}")
        elif isinstance(source, (bytes, bytearray)):
            check_source_size(len(source), max_bytes=MAX_BYTES, what="audio bytes")
            values = _parse_text(_decode(bytes(source), "audio bytes"), "audio bytes")
        else:
            values = _as_array(source)
        check_finite_range(values, what="audio recording", unit=UNIT, low=LOW, high=HIGH,
                           index_names=("reading",))
        if len(values) < MIN_READINGS:
            raise InvalidSignalError(f"audio recording has {len(values)} reading(s), fewer than the {MIN_READINGS} "
                                     f"the encoder needs: send at least {MIN_READINGS} readings")
        return torch.from_numpy(values.astype(np.float32)).reshape(-1, 1)

    def preprocess(self, signal: torch.Tensor, **options: Any) -> torch.Tensor:
        """``[T, 1]`` from ``load`` -> the last ``WINDOW`` readings, scaled: ``[min(T, WINDOW), 1]`` float32."""
        if not isinstance(signal, torch.Tensor) or signal.dim() != 2 or signal.shape[1] != 1:
            shape = tuple(signal.shape) if hasattr(signal, "shape") else type(signal).__name__
            raise InvalidSignalError(f"audio preprocess expects the [T, 1] tensor that load returns, got {shape}: "
                                     "call load(source) first")
        if signal.shape[0] < MIN_READINGS:
            raise InvalidSignalError(f"audio preprocess got {signal.shape[0]} reading(s), fewer than the "
                                     f"{MIN_READINGS} that load accepts: call load(source) first")
        return ((signal[-WINDOW:] - CENTER) / SCALE).to(torch.float32)

    def build_encoder(self, config: Mapping[str, Any]) -> Encoder:
        from .encoder import build_encoder  # model code loads when an adapter is built, not at registration

        return build_encoder(config)

    def example_input(self) -> Path:
        """The shipped example recording (a rising trend): every check the host runs goes through the real
        file path, as a user's attachment would."""
        return example_path("rising")


def _decode(data: bytes, what: str) -> str:
    if len(data) > MAX_BYTES:  # the file grew between the size check and the read
        check_source_size(len(data), max_bytes=MAX_BYTES, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSignalError(f"{what} is not UTF-8 text (byte {exc.start}): save it as text, one reading "
                                 "per line") from None


def _parse_text(text: str, what: str) -> np.ndarray:
    """One plain decimal number per line; ``#`` comments and blank lines are skipped."""
    values: list[float] = []
    for number, line in enumerate(text.splitlines(), start=1):
        cell = line.strip()
        if not cell or cell.startswith("#"):
            continue
        if len(values) == MAX_READINGS:
            raise InvalidSignalError(f"{what} has more than {MAX_READINGS} readings: cut it into shorter recordings")
        parts = _SEPARATORS.split(cell)
        if len(parts) > 1 and not _DECIMAL_COMMA.fullmatch(cell) and all(map(_is_decimal, parts)):
            raise InvalidSignalError(f"{what}, line {number}: {cell!r} holds {len(parts)} values: write one "
                                     "reading per line")
        values.append(parse_decimal(cell, what=f"{what}, line {number}"))
    return np.asarray(values, dtype=np.float64)


def _is_decimal(cell: str) -> bool:
    try:
        parse_decimal(cell, what="")
    except InvalidSignalError:
        return False
    return True


def _as_array(source: Any) -> np.ndarray:
    """An array-like source as a 1-D float64 array (float64, so that values beyond float32 are caught)."""
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    try:
        array = np.asarray(source)
    except (TypeError, ValueError) as exc:
        raise InvalidSignalError(f"cannot read a audio recording from {type(source).__name__} ({exc}): pass a "
                                 "path, bytes, or an array of shape [T] or [T, 1]") from None
    if array.dtype.kind not in "biuf":
        raise InvalidSignalError(f"a audio recording holds numbers, got an array of {array.dtype}: pass a "
                                 "path, bytes, or a numeric array of shape [T] or [T, 1]")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidSignalError(f"a audio recording has shape [T] or [T, 1], got {list(array.shape)}: pass "
                                 "one channel of readings")
    if array.size > MAX_READINGS:
        raise InvalidSignalError(f"audio recording has {array.size} readings, more than {MAX_READINGS}: cut it "
                                 "into shorter recordings")
    return array.astype(np.float64)
