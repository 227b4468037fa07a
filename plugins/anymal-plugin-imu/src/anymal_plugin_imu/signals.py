"""Parsing, validation, resampling and normalisation of IMU recordings.

The canonical IMU signal in this plugin is a float32 tensor ``[T, 6]`` at 50 Hz: accelerometer x/y/z in g
followed by gyroscope x/y/z in rad/s, the layout and units of UCI HAPT (a waist-worn smartphone). Everything
here is plain numpy/torch with no model code, so it is cheap to import.

Every malformed input raises :class:`anymal_host.errors.InvalidSignalError` with a message that names the
problem and the fix.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymal_host.errors import InvalidSignalError

__all__ = [
    "SAMPLE_RATE",
    "CHANNELS",
    "CHANNEL_NAMES",
    "WINDOW",
    "MIN_SECONDS",
    "MAX_SECONDS",
    "ACC_UNITS",
    "GYRO_UNITS",
    "NORM_MEAN",
    "NORM_STD",
    "parse_source",
    "to_canonical",
    "resample",
    "normalise",
    "denormalise",
    "crop_center",
    "windows",
]

#: Rate (Hz) the encoder runs at: UCI HAPT's rate.
SAMPLE_RATE = 50.0
#: Channels after loading: accelerometer x/y/z then gyroscope x/y/z.
CHANNELS = 6
CHANNEL_NAMES = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
#: One encoder window: 128 samples = 2.56 s at 50 Hz, the UCI HAR window.
WINDOW = 128
#: Shorter recordings carry too little motion to say anything (and are usually a truncated upload).
MIN_SECONDS = 1.0
#: Longer recordings are refused rather than silently loaded into memory: cut them first.
MAX_SECONDS = 3600.0

#: Accelerometer unit flags -> factor to g. Standard gravity per ISO 80000-3.
ACC_UNITS = {"g": 1.0, "m/s2": 1.0 / 9.80665, "m/s^2": 1.0 / 9.80665, "m/s**2": 1.0 / 9.80665}
#: Gyroscope unit flags -> factor to rad/s.
GYRO_UNITS = {"rad/s": 1.0, "deg/s": math.pi / 180.0, "dps": math.pi / 180.0}

# Fixed per-channel normalisation, measured once on the labelled activity samples (labels 1-6) of the HAPT
# training users (see hapt.TRAIN_USERS) and rounded. Fixed constants, not per-recording statistics, so that
# the gravity direction and the motion energy - what tells lying from standing and walking from sitting -
# survive normalisation. Accelerometer in g, gyroscope in rad/s.
NORM_MEAN = (0.810, 0.017, 0.082, 0.008, -0.003, -0.007)
NORM_STD = (0.415, 0.385, 0.365, 0.432, 0.428, 0.271)

# Column names accepted in a CSV header for each canonical channel ("acc-x", "acc_x", "accX", "ax"...).
_HEADER_ALIASES = {
    "accx": 0, "accy": 1, "accz": 2, "ax": 0, "ay": 1, "az": 2,
    "accelx": 0, "accely": 1, "accelz": 2, "accelerometerx": 0, "accelerometery": 1, "accelerometerz": 2,
    "gyrox": 3, "gyroy": 4, "gyroz": 5, "gx": 3, "gy": 4, "gz": 5,
    "gyroscopex": 3, "gyroscopey": 4, "gyroscopez": 5,
}
_RATE_COMMENT = re.compile(r"^#\s*sample_rate\s*[=:]\s*([0-9.eE+-]+)\s*(hz)?\s*$", re.IGNORECASE)
_NPY_MAGIC = b"\x93NUMPY"


def parse_source(source: Any) -> tuple[np.ndarray, float | None]:
    """Read a path (``.csv`` / ``.npy``), bytes (CSV text or ``.npy`` bytes), a numpy array or a torch tensor.

    Returns ``(array [T, C] float64, declared sample rate or None)``. The declared rate comes from a
    ``# sample_rate=100`` comment line in a CSV. Validates only what the source format decides (existence,
    extension, numeric cells); shapes and values are checked by :func:`to_canonical`.
    """
    if isinstance(source, torch.Tensor):
        return _numeric_array(source.detach().cpu().numpy(), "tensor"), None
    if isinstance(source, np.ndarray):
        return _numeric_array(source, "array"), None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data.startswith(_NPY_MAGIC):
            return _read_npy(io.BytesIO(data), "the .npy bytes"), None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidSignalError(
                "IMU bytes are neither UTF-8 CSV text nor a .npy file: pass CSV text (one row per sample, "
                "columns acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z) or the bytes of a .npy file"
            ) from exc
        return _parse_csv(text, "the CSV bytes")
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".npy"):
            raise InvalidSignalError(
                f"unsupported IMU file extension {suffix or '(none)'!r} for {str(path)!r}: save the recording "
                "as .csv (one row per sample) or .npy (array [T, 6] or [T, 3])"
            )
        if not path.is_file():
            raise InvalidSignalError(f"IMU file {str(path)!r} does not exist: check the path")
        if suffix == ".npy":
            with path.open("rb") as fh:
                return _read_npy(fh, repr(str(path))), None
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidSignalError(f"IMU file {str(path)!r} is not UTF-8 text: save it as a plain CSV file") from exc
        return _parse_csv(text, repr(str(path)))
    raise InvalidSignalError(
        f"cannot read an IMU signal from {type(source).__name__}: pass a .csv/.npy path, CSV bytes, "
        "a numpy array or a torch tensor of shape [T, 6] or [T, 3]"
    )


def _read_npy(fh: Any, what: str) -> np.ndarray:
    try:
        # allow_pickle=False: an object array in a .npy is a pickle, and we never unpickle user input.
        array = np.load(fh, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise InvalidSignalError(f"{what} is not a readable .npy file ({exc}): save the array with np.save") from exc
        raise InvalidSignalError(f"{what} holds an object array (a pickle), which is refused: save a numeric "
                                 "float array with np.save") from exc
    except Exception as exc:  # truncated or not an .npy at all
        raise InvalidSignalError(f"{what} is not a readable .npy file ({exc}): save the array with np.save") from exc
    return _numeric_array(array, what)


def _numeric_array(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InvalidSignalError(f"IMU {what} has dtype {array.dtype}, not real numbers: pass float values "
                                 "(accelerometer in g, gyroscope in rad/s)")
    return np.asarray(array, dtype=np.float64)


def _parse_csv(text: str, what: str) -> tuple[np.ndarray, float | None]:
    rate: float | None = None
    rows: list[list[str]] = []
    header: list[str] | None = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            match = _RATE_COMMENT.match(line)
            if match:
                rate = _parse_rate(match.group(1), f"the '# sample_rate=' comment of {what}")
            continue
        cells = [c.strip() for c in line.split(",")]
        if header is None and not rows and not all(_is_number(c) for c in cells):
            # A first data line with any non-numeric cell is a header (column names), not data.
            header = cells
            continue
        rows.append(cells)
        if len(cells) != len(rows[0]):
            raise InvalidSignalError(f"{what}, line {line_no}: {len(cells)} cells where earlier rows have "
                                     f"{len(rows[0])}: every row needs the same columns")
        for col, cell in enumerate(cells):
            if not _is_number(cell):
                raise InvalidSignalError(
                    f"{what}, line {line_no}, column {col + 1}: {cell!r} is not a number: every cell below the "
                    "header must be a decimal number (remove text, units and empty cells)"
                )
    if not rows:
        raise InvalidSignalError(f"{what} is empty (no data rows): pass a CSV with one row per sample, columns "
                                 "acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z (or acc_x,acc_y,acc_z)")
    array = np.asarray(rows, dtype=np.float64)
    if header is not None:
        array = _reorder_by_header(array, header, what)
    return array, rate


def _reorder_by_header(array: np.ndarray, header: list[str], what: str) -> np.ndarray:
    if len(header) != array.shape[1]:
        raise InvalidSignalError(f"{what}: the header has {len(header)} names but rows have {array.shape[1]} "
                                 "cells: give one name per column")
    keys = [re.sub(r"[^a-z]", "", name.lower()) for name in header]
    positions = [_HEADER_ALIASES.get(k) for k in keys]
    # Columns are reordered by name only when every name is known; otherwise the order given is used as is.
    if all(p is not None for p in positions) and len(set(positions)) == len(positions):
        if sorted(positions) in ([0, 1, 2], [0, 1, 2, 3, 4, 5]):
            return array[:, np.argsort(positions)]
    return array


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _parse_rate(value: Any, what: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidSignalError(f"{what}: sample rate {value!r} is not a number: give it in Hz, e.g. 50") from exc
    if not math.isfinite(rate) or rate <= 0 or rate > 10_000:
        raise InvalidSignalError(f"{what}: sample rate {value!r} Hz is not plausible: give the rate in Hz "
                                 "(between 0 and 10000), e.g. 50")
    return rate


def to_canonical(array: np.ndarray, sample_rate: float | None = None, units: str = "g",
                 gyro_units: str = "rad/s") -> torch.Tensor:
    """Validate ``array`` ``[T, 6]`` or ``[T, 3]`` and return the canonical float32 ``[T', 6]`` at 50 Hz.

    ``[T, 3]`` is accelerometer only: the gyroscope channels are filled with zeros (no rotation measured),
    which is also what a still device reads. ``units`` scales the accelerometer (``"g"`` or ``"m/s2"``),
    ``gyro_units`` the gyroscope (``"rad/s"`` or ``"deg/s"``). ``sample_rate`` defaults to 50 Hz.
    """
    rate = SAMPLE_RATE if sample_rate is None else _parse_rate(sample_rate, "sample_rate")
    acc_scale = _unit_factor(units, ACC_UNITS, "units", "accelerometer")
    gyro_scale = _unit_factor(gyro_units, GYRO_UNITS, "gyro_units", "gyroscope")
    if array.ndim != 2:
        raise InvalidSignalError(f"IMU signal has {array.ndim} dimension(s) (shape {tuple(array.shape)}): pass a "
                                 "2-D array [T, 6] (acc x/y/z, gyro x/y/z) or [T, 3] (acc x/y/z)")
    if array.shape[1] not in (3, 6):
        hint = (" It looks transposed: pass array.T." if array.shape[0] in (3, 6) and array.shape[1] > 6 else "")
        raise InvalidSignalError(f"IMU signal has {array.shape[1]} channels (shape {tuple(array.shape)}): expected 6 "
                                 "(acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z) or 3 (accelerometer only); remove "
                                 f"other columns such as timestamps or labels.{hint}")
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise InvalidSignalError(f"IMU signal contains NaN or infinite values (first at sample {bad[0]}, channel "
                                 f"{bad[1]}): fill or drop the missing samples before sending the recording")
    seconds = array.shape[0] / rate
    if seconds < MIN_SECONDS:
        raise InvalidSignalError(f"IMU recording is too short: {array.shape[0]} samples at {rate:g} Hz = "
                                 f"{seconds:.2f} s; send at least {MIN_SECONDS:g} s "
                                 f"({math.ceil(MIN_SECONDS * rate)} samples), ideally {WINDOW / SAMPLE_RATE:g} s")
    if seconds > MAX_SECONDS:
        raise InvalidSignalError(f"IMU recording is too long: {seconds:.0f} s at {rate:g} Hz (limit "
                                 f"{MAX_SECONDS:.0f} s): cut it into the part you want to ask about")
    if array.shape[1] == 3:
        array = np.concatenate([array, np.zeros_like(array)], axis=1)
    scale = np.array([acc_scale] * 3 + [gyro_scale] * 3)
    signal = torch.from_numpy(array * scale).to(torch.float32)
    return resample(signal, rate, SAMPLE_RATE)


def _unit_factor(flag: Any, table: dict[str, float], option: str, sensor: str) -> float:
    key = str(flag).strip().lower().replace(" ", "") if flag is not None else ""
    if key not in table:
        raise InvalidSignalError(f"unknown {sensor} unit {option}={flag!r}: use one of "
                                 f"{', '.join(repr(k) for k in table)}")
    return table[key]


def resample(signal: torch.Tensor, from_rate: float, to_rate: float = SAMPLE_RATE) -> torch.Tensor:
    """Linear-interpolation resampling along dim 0 of ``[T, C]``; the first sample stays at time 0.

    Linear interpolation (no anti-alias filter) is enough here: human activity lives below ~20 Hz, under
    the 25 Hz Nyquist limit of the 50 Hz target.
    """
    if from_rate == to_rate:
        return signal
    n_in = int(signal.shape[0])
    duration = (n_in - 1) / from_rate
    n_out = int(math.floor(duration * to_rate + 1e-9)) + 1
    t_out = torch.arange(n_out, dtype=torch.float64) * (from_rate / to_rate)  # positions in input samples
    left = t_out.floor().long().clamp(max=n_in - 1)
    right = (left + 1).clamp(max=n_in - 1)
    frac = (t_out - left.to(torch.float64)).to(signal.dtype).unsqueeze(1)
    return signal[left] * (1 - frac) + signal[right] * frac


def normalise(signal: torch.Tensor) -> torch.Tensor:
    """Canonical units -> the encoder's input scale, with the fixed HAPT constants."""
    mean = torch.tensor(NORM_MEAN, dtype=signal.dtype)
    std = torch.tensor(NORM_STD, dtype=signal.dtype)
    return (signal - mean) / std


def denormalise(signal: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalise` (for plots and examples)."""
    return signal * torch.tensor(NORM_STD, dtype=signal.dtype) + torch.tensor(NORM_MEAN, dtype=signal.dtype)


def crop_center(signal: torch.Tensor, length: int) -> torch.Tensor:
    """The central ``length`` samples (the whole signal if shorter): the middle of a recording avoids the
    moments of starting and stopping it, when the phone is picked up or put away."""
    total = int(signal.shape[0])
    if total <= length:
        return signal
    start = (total - length) // 2
    return signal[start:start + length]


def windows(signal: torch.Tensor, size: int = WINDOW, step: int = WINDOW // 2) -> torch.Tensor:
    """Sliding windows ``[N, size, C]`` over ``[T, C]`` (50% overlap by default); ``N = 0`` if ``T < size``.

    The trailing samples that do not fill a whole window are dropped, as UCI HAR does.
    """
    if size <= 0 or step <= 0:
        raise ValueError(f"window size and step must be positive, got size={size}, step={step}")
    if signal.shape[0] < size:
        return signal.new_zeros((0, size, *signal.shape[1:]))
    return signal.unfold(0, size, step).movedim(-1, 1).contiguous()
