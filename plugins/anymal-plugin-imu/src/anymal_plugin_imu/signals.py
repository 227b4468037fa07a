"""Parsing, validation, resampling and normalisation of IMU recordings.

The canonical IMU signal in this plugin is a float32 tensor ``[T, 6]`` at 50 Hz: accelerometer x/y/z in g
followed by gyroscope x/y/z in rad/s, the layout and units of UCI HAPT (a waist-worn smartphone). Everything
here is plain numpy/torch with no model code, so it is cheap to import.

Every malformed input raises :class:`anymal_host.errors.InvalidSignalError` with a message that names the
problem and the fix. The loader follows the host's rules for every loader (:mod:`anymal_host.sources`):
paths are checked with ``os.stat`` before they are opened and files over :data:`MAX_CSV_BYTES` /
:data:`MAX_NPY_BYTES` are refused before they are read; CSV text is streamed through the ``csv`` module and
reading stops once it holds more than :data:`MAX_SECONDS` of samples at the file's rate; cells must be plain
decimals; values must be finite and within what an accelerometer (:data:`MAX_ACC_G`) or a gyroscope
(:data:`MAX_GYRO_RAD_S`) can read; and a recording must give the encoder at least :data:`MIN_SAMPLES`
samples at 50 Hz.
"""

from __future__ import annotations

import array as pyarray
import csv
import io
import math
import re
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import torch

from anymal_host.errors import InvalidSignalError
from anymal_host.sources import (
    check_finite_range,
    check_source_size,
    guess_delimiter,
    open_source_file,
    parse_decimal,
)

__all__ = [
    "SAMPLE_RATE",
    "CHANNELS",
    "CHANNEL_NAMES",
    "WINDOW",
    "MIN_SECONDS",
    "MIN_SAMPLES",
    "MAX_SECONDS",
    "MAX_SAMPLE_RATE",
    "MAX_SAMPLES",
    "MAX_CSV_BYTES",
    "MAX_NPY_BYTES",
    "MAX_LINE_CHARS",
    "MAX_ACC_G",
    "MAX_GYRO_RAD_S",
    "ACC_UNITS",
    "GYRO_UNITS",
    "NORM_MEAN",
    "NORM_STD",
    "parse_source",
    "to_canonical",
    "min_source_samples",
    "resampled_length",
    "resample",
    "normalise",
    "denormalise",
    "crop_center",
    "windows",
]

from .spec import CHANNEL_NAMES, CHANNELS, MIN_SAMPLES, MIN_SECONDS, SAMPLE_RATE, WINDOW  # noqa: E402,F401

#: Longer recordings are refused rather than silently loaded into memory: cut them first.
MAX_SECONDS = 3600.0
#: Highest source rate accepted. Human motion lives below ~20 Hz and activity data sets record at 20-200 Hz;
#: 1 kHz leaves room for lab sensors while keeping the longest recording (and so every size limit) bounded.
MAX_SAMPLE_RATE = 1000.0
#: Most samples any source may hold: MAX_SECONDS at MAX_SAMPLE_RATE. The exact limit is MAX_SECONDS at the
#: recording's own rate; this one is checked first, from the shape alone, before anything is converted.
MAX_SAMPLES = int(MAX_SECONDS * MAX_SAMPLE_RATE)
#: Largest CSV (file or bytes) read at all: MAX_SAMPLES rows of 6 cells of 16 characters ("-0.123456789012,"),
#: plus 1 MiB for a header and comments. Checked on the size before one byte is read.
MAX_CSV_BYTES = MAX_SAMPLES * CHANNELS * 16 + 2**20
#: Largest .npy (file or bytes): MAX_SAMPLES float64 samples of 6 channels plus the largest header.
MAX_NPY_BYTES = MAX_SAMPLES * CHANNELS * 8 + 2**16
#: Longest CSV line: a row of six numbers needs < 200; this bounds the memory one line can take.
MAX_LINE_CHARS = 4096
#: Largest accelerometer reading (g) per axis: the widest MEMS accelerometers measure +-400 g (e.g. ST's
#: H3LIS331DL); larger values are milli-g or raw counts mistaken for g.
MAX_ACC_G = 400.0
#: Largest gyroscope reading (rad/s) per axis: +-4000 deg/s, the widest range of MEMS gyroscopes; larger
#: values are deg/s mistaken for rad/s (or raw counts).
MAX_GYRO_RAD_S = 4000.0 * math.pi / 180.0

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
# Any comment that starts like a rate declaration ("# sample_rate", "# Sampling rate") is one, and must
# then be readable: a typo must not silently mean 50 Hz.
_RATE_KEY = re.compile(r"#\s*sampl(?:e|ing)[\s_-]*rate", re.IGNORECASE)
_RATE_COMMENT = re.compile(r"#\s*sampl(?:e|ing)[\s_-]*rate\s*[=:]\s*(\S+?)\s*(?:hz)?", re.IGNORECASE)
_NPY_MAGIC = b"\x93NUMPY"
_CSV_FORMAT = "one row per sample, columns acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z (or acc_x,acc_y,acc_z)"
_TOO_LARGE_FIX = (f"the longest accepted recording is {MAX_SECONDS:.0f} s at up to {MAX_SAMPLE_RATE:g} Hz; "
                  "cut it into the part you want to ask about")


def parse_source(source: Any, sample_rate: float | None = None) -> tuple[np.ndarray, float | None]:
    """Read a path (``.csv`` / ``.npy``), bytes (CSV text or ``.npy`` bytes), a numpy array or a torch tensor.

    Returns ``(array [T, C] float64, declared sample rate or None)``. The declared rate comes from a
    ``# sample_rate=100`` comment line above the data of a CSV. ``sample_rate`` is the rate to assume where
    the source declares none (default 50 Hz): a CSV is read only up to :data:`MAX_SECONDS` at that rate, so
    a huge file is refused after an hour's worth of rows, not after all of them. Validates what the source
    format decides (kind of path, size, extension, cells, dtype, length); shapes and values are checked by
    :func:`to_canonical`.
    """
    fallback_rate = SAMPLE_RATE if sample_rate is None else _parse_rate(sample_rate, "sample_rate")
    if isinstance(source, torch.Tensor):
        return _numeric_array(_tensor_to_numpy(source), "tensor"), None
    if isinstance(source, np.ndarray):
        return _numeric_array(source, "array"), None
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        if not (view.contiguous and view.ndim == 1 and view.itemsize == 1):
            view = memoryview(view.tobytes())  # a strided or multi-byte view: its bytes, in order
        is_npy = view[: len(_NPY_MAGIC)] == _NPY_MAGIC
        what = "the .npy bytes" if is_npy else "the CSV bytes"
        check_source_size(view.nbytes, max_bytes=MAX_NPY_BYTES if is_npy else MAX_CSV_BYTES, what=what,
                          fix=_TOO_LARGE_FIX)
        fh = io.BytesIO(view)
        return (_read_npy(fh, what), None) if is_npy else _parse_csv(fh, what, fallback_rate)
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".npy"):
            raise InvalidSignalError(
                f"unsupported IMU file extension {suffix or '(none)'!r} for {str(path)!r}: save the recording "
                "as .csv (one row per sample) or .npy (array [T, 6] or [T, 3])"
            )
        limit = MAX_NPY_BYTES if suffix == ".npy" else MAX_CSV_BYTES
        with open_source_file(path, max_bytes=limit, what="IMU file", fix=_TOO_LARGE_FIX) as fh:
            if suffix == ".npy":
                return _read_npy(fh, repr(str(path))), None
            return _parse_csv(fh, repr(str(path)), fallback_rate)
    raise InvalidSignalError(
        f"cannot read an IMU signal from {type(source).__name__}: pass a .csv/.npy path, CSV bytes, "
        "a numpy array or a torch tensor of shape [T, 6] or [T, 3]"
    )


def _tensor_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    _check_size(tensor.numel(), tuple(tensor.shape), "tensor")  # before any copy
    if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
        tensor = tensor.float()  # numpy has no bfloat16 nor float8
    try:
        return tensor.cpu().resolve_conj().resolve_neg().numpy()
    except (TypeError, RuntimeError) as exc:  # sparse, quantized, meta tensors...
        raise InvalidSignalError(f"cannot read an IMU signal from a {tensor.dtype} tensor with layout "
                                 f"{tensor.layout} ({exc}): pass a dense float tensor [T, 6] or [T, 3]") from exc


def _read_npy(fh: BinaryIO, what: str) -> np.ndarray:
    """A .npy whose header is read and checked (dtype, size) before any of its data is."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran_order, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran_order, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
    except Exception as exc:  # truncated, or not an .npy at all: numpy raises ValueError, EOFError, SyntaxError...
        raise InvalidSignalError(f"{what} is not a readable .npy file ({exc}): save the array with np.save") from exc
    if dtype.hasobject:
        # An object array in a .npy is a pickle, and we never unpickle user input.
        raise InvalidSignalError(f"{what} holds an object array (a pickle), which is refused: save a numeric "
                                 "float array with np.save")
    _check_dtype(dtype, what)
    count = math.prod(shape)
    _check_size(count, shape, what)
    needed = count * dtype.itemsize
    data = fh.read(needed)
    if len(data) < needed:
        raise InvalidSignalError(f"{what} is not a readable .npy file (truncated: {len(data)} of the {needed} data "
                                 f"bytes its header declares for shape {tuple(shape)}): save the array with np.save")
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran_order else "C")
    return _numeric_array(array, what)


def _check_dtype(dtype: np.dtype, what: str) -> None:
    if dtype.kind not in "iuf":  # bool, complex, strings, structured and sub-array dtypes are not samples
        raise InvalidSignalError(f"IMU {what} has dtype {dtype}, not real numbers: pass float values "
                                 "(accelerometer in g, gyroscope in rad/s)")


def _check_size(count: int, shape: tuple[int, ...], what: str) -> None:
    if count > MAX_SAMPLES * CHANNELS or (len(shape) > 0 and shape[0] > MAX_SAMPLES):
        raise InvalidSignalError(f"IMU {what} is too long: shape {tuple(shape)} holds more than {MAX_SAMPLES} "
                                 f"samples of {CHANNELS} channels; {_TOO_LARGE_FIX}")


def _numeric_array(array: np.ndarray, what: str) -> np.ndarray:
    _check_dtype(array.dtype, what)
    _check_size(int(array.size), tuple(array.shape), what)  # before the float64 copy, which may be large
    with np.errstate(invalid="ignore"):  # a signalling NaN warns when cast; to_canonical refuses it as NaN
        return np.asarray(array, dtype=np.float64)


def _parse_csv(fh: BinaryIO, what: str, fallback_rate: float) -> tuple[np.ndarray, float | None]:
    """Stream CSV text from ``fh`` through the ``csv`` module; stop at the first error or at the row limit.

    Memory stays at one line of text plus 8 bytes per accepted cell, however large or malformed the input.
    """
    stream = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    line_no = 0
    n_rows = 0
    rate: float | None = None

    def data_lines() -> Iterator[str]:
        # Comments and blank lines are handled here, so csv.reader only sees header and data lines, and
        # line_no stays the file's own line number for every message.
        nonlocal line_no, rate
        while line := stream.readline(MAX_LINE_CHARS + 1):
            line_no += 1
            if len(line) > MAX_LINE_CHARS:
                raise InvalidSignalError(f"{what}, line {line_no} is longer than {MAX_LINE_CHARS} characters: a "
                                         f"CSV row holds one sample; write {_CSV_FORMAT}")
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                declared = _rate_comment(stripped, f"{what}, line {line_no}")
                if declared is not None:
                    if n_rows:
                        raise InvalidSignalError(f"{what}, line {line_no}: the sample rate comment comes after "
                                                 "data rows: move it to the top of the file, above the data")
                    if rate is not None and declared != rate:
                        raise InvalidSignalError(f"{what}, line {line_no}: a second sample rate ({declared:g} Hz) "
                                                 f"contradicts the first ({rate:g} Hz): keep the right one")
                    rate = declared
                continue
            yield line

    values = pyarray.array("d")
    header: list[str] | None = None
    width = 0
    max_rows = 0
    try:
        for cells in csv.reader(data_lines(), skipinitialspace=True):
            where = f"{what}, line {line_no}"
            if any("\n" in c or "\r" in c for c in cells):
                raise InvalidSignalError(f"{where}: a quote (\") is never closed, so the lines up to here were read "
                                         "as one cell: remove the stray quote character")
            if not width and header is None:
                problem = _delimiter_problem(cells)
                if problem:
                    raise InvalidSignalError(f"{where}: {problem}")
            if not width and header is None and _is_header(cells):
                header = [c.strip() for c in cells]
                continue
            if not width:
                width = len(cells)
                # The rate is settled here: a rate comment below the first data row is refused above.
                max_rows = math.floor(MAX_SECONDS * (rate or fallback_rate) + 1e-9)
                if header is not None and len(header) != width:
                    raise InvalidSignalError(f"{what}: the header has {len(header)} names but rows have {width} "
                                             "cells: give one name per column")
            elif len(cells) != width:
                hint = f" ({_delimiter_problem(cells)})" if len(cells) == 1 and guess_delimiter(cells[0]) else ""
                raise InvalidSignalError(f"{where}: {len(cells)} cells where earlier rows have {width}: every row "
                                         f"needs the same columns{hint}")
            n_rows += 1
            if n_rows > max_rows:
                raise InvalidSignalError(
                    f"IMU recording is too long: {what} holds more than {max_rows} samples (reading stopped at "
                    f"line {line_no}), over {MAX_SECONDS:.0f} s at {rate or fallback_rate:g} Hz: cut it into the "
                    "part you want to ask about")
            for col, cell in enumerate(cells):
                values.append(parse_decimal(cell, what=f"{where}, column {col + 1}"))
    except csv.Error as exc:  # an unclosed quote that runs past the field size limit, a NUL byte...
        raise InvalidSignalError(f"{what}, line {line_no}: not readable as CSV ({exc}): write {_CSV_FORMAT}, "
                                 "plain numbers without quotes spanning lines") from exc
    except UnicodeDecodeError as exc:
        after = f" after line {line_no}" if line_no else ""  # text is decoded in chunks: the line is a lower bound
        raise InvalidSignalError(f"{what} is neither UTF-8 CSV text nor a .npy file (it holds bytes that are not "
                                 f"UTF-8{after}): save the recording as UTF-8 CSV ({_CSV_FORMAT}) or with "
                                 "np.save") from exc
    finally:
        stream.detach()  # leave closing fh to its owner
    if not n_rows:
        raise InvalidSignalError(f"{what} is empty (no data rows): pass a CSV with {_CSV_FORMAT}")
    array = np.frombuffer(values, dtype=np.float64).reshape(n_rows, width)
    if header is not None:
        array = _reorder_by_header(array, header)
    return array, rate


def _is_header(cells: list[str]) -> bool:
    """A first row of names: no cell reads as a number (even by Python's lenient ``float``), and some
    cell has a letter. A first row like ``nan,1,2`` is data, refused cell by cell with a precise message."""
    def numeric(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    return not any(numeric(c) for c in cells) and any(ch.isalpha() for c in cells for ch in c)


def _short(cell: str, limit: int = 40) -> str:
    return repr(cell if len(cell) <= limit else cell[:limit] + "...")


def _delimiter_problem(cells: list[str]) -> str | None:
    """What is wrong with the columns of the first row, or None: a row that came back as one cell, or cells
    that hold another delimiter (semicolon-separated columns with decimal commas split at the commas)."""
    if len(cells) == 1:
        delimiter = guess_delimiter(cells[0])
        if delimiter is None:
            return f"the row is a single cell {_short(cells[0])}: a row needs 3 or 6 columns; write {_CSV_FORMAT}"
        return (f"the row is a single cell {_short(cells[0])}: the file seems to separate columns with {delimiter}; "
                f"save it with commas between columns ({_CSV_FORMAT})")
    for cell in cells:
        delimiter = guess_delimiter(cell, spaces=False)
        if delimiter:
            return (f"the cell {_short(cell)} holds {delimiter}: the file seems to separate columns with {delimiter} "
                    "and to write decimal commas (0,5); save it with commas between columns and decimal points "
                    "(0.5)")
    return None


def _rate_comment(comment: str, where: str) -> float | None:
    """The rate a ``# sample_rate=...`` comment declares, None for other comments; unreadable ones raise."""
    if not _RATE_KEY.match(comment):
        return None
    match = _RATE_COMMENT.fullmatch(comment)
    try:
        value = parse_decimal(match.group(1), what=where) if match else None
    except InvalidSignalError:
        value = None
    if value is None:
        raise InvalidSignalError(f"{where}: {_short(comment)} does not give a sample rate that can be read: write "
                                 "it as '# sample_rate=50' (in Hz), or delete the line to use the default 50 Hz")
    return _parse_rate(value, f"{where}, sample rate")


def _reorder_by_header(array: np.ndarray, header: list[str]) -> np.ndarray:
    keys = [re.sub(r"[^a-z]", "", name.lower()) for name in header]
    positions = [_HEADER_ALIASES.get(k) for k in keys]
    # Columns are reordered by name only when every name is known; otherwise the order given is used as is.
    if all(p is not None for p in positions) and len(set(positions)) == len(positions):
        if sorted(positions) in ([0, 1, 2], [0, 1, 2, 3, 4, 5]):
            return array[:, np.argsort(positions)]
    return array


def _parse_rate(value: Any, what: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidSignalError(f"{what}: sample rate {value!r} is not a number: give it in Hz, e.g. 50") from exc
    if not math.isfinite(rate) or rate <= 0 or rate > MAX_SAMPLE_RATE:
        raise InvalidSignalError(f"{what}: sample rate {value!r} Hz is not plausible: give the rate in Hz "
                                 f"(above 0, at most {MAX_SAMPLE_RATE:g}; downsample faster recordings), e.g. 50")
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
    check_finite_range(array, what="IMU signal", index_names=("sample", "channel"))
    n = int(array.shape[0])
    seconds = n / rate
    shortest = min_source_samples(rate)
    if n < shortest:
        raise InvalidSignalError(
            f"IMU recording is too short: {n} sample{'s' if n != 1 else ''} at {rate:g} Hz = {seconds:.2f} s, "
            f"{resampled_length(n, rate)} at 50 Hz; send at least {MIN_SECONDS:g} s ({shortest} samples at {rate:g} "
            f"Hz, which give the encoder the {MIN_SAMPLES} samples at 50 Hz it needs), ideally "
            f"{WINDOW / SAMPLE_RATE:g} s")
    if seconds > MAX_SECONDS:
        raise InvalidSignalError(f"IMU recording is too long: {seconds:.0f} s at {rate:g} Hz (limit "
                                 f"{MAX_SECONDS:.0f} s): cut it into the part you want to ask about")
    if array.shape[1] == 3:
        array = np.concatenate([array, np.zeros_like(array)], axis=1)
    scaled = array * np.array([acc_scale] * 3 + [gyro_scale] * 3)
    check_finite_range(scaled[:, :3], what="IMU accelerometer", unit="g", low=-MAX_ACC_G, high=MAX_ACC_G,
                       index_names=("sample", "channel"),
                       fix=f"no accelerometer reads beyond +-{MAX_ACC_G:g} g; values this large are usually milli-g "
                           "or raw sensor counts: convert them to g (or to m/s^2 and pass units='m/s2')")
    check_finite_range(scaled[:, 3:], what="IMU gyroscope", unit="rad/s", low=-MAX_GYRO_RAD_S, high=MAX_GYRO_RAD_S,
                       index_names=("sample", "gyro channel"),
                       fix="no gyroscope reads beyond +-4000 deg/s; values this large are usually deg/s: pass "
                           "gyro_units='deg/s' (or convert raw counts to rad/s)")
    signal = torch.from_numpy(scaled).to(torch.float32)
    return resample(signal, rate, SAMPLE_RATE)


def _unit_factor(flag: Any, table: dict[str, float], option: str, sensor: str) -> float:
    key = str(flag).strip().lower().replace(" ", "") if flag is not None else ""
    if key not in table:
        raise InvalidSignalError(f"unknown {sensor} unit {option}={flag!r}: use one of "
                                 f"{', '.join(repr(k) for k in table)}")
    return table[key]


def resampled_length(n: int, from_rate: float, to_rate: float = SAMPLE_RATE) -> int:
    """Samples :func:`resample` returns for ``n`` input samples: the first sample stays at time 0 and the
    output covers the input's span ``(n - 1) / from_rate``, so one sample stays one sample at any rate."""
    if from_rate == to_rate or n < 1:
        return n
    return int(math.floor((n - 1) / from_rate * to_rate + 1e-9)) + 1


def min_source_samples(rate: float) -> int:
    """Fewest samples at ``rate`` that ``load`` accepts: :data:`MIN_SECONDS` long (``n / rate``) and at least
    :data:`MIN_SAMPLES` samples once resampled to 50 Hz (at 1 Hz: 2 samples; at 100 Hz: 100)."""
    n = max(1, math.ceil(MIN_SECONDS * rate - 1e-9))
    while resampled_length(n, rate) < MIN_SAMPLES:  # at most a couple of steps: each adds 50 / rate samples
        n += 1
    return n


def resample(signal: torch.Tensor, from_rate: float, to_rate: float = SAMPLE_RATE) -> torch.Tensor:
    """Linear-interpolation resampling along dim 0 of ``[T, C]``; the first sample stays at time 0.

    Linear interpolation (no anti-alias filter) is enough here: human activity lives below ~20 Hz, under
    the 25 Hz Nyquist limit of the 50 Hz target.
    """
    if from_rate == to_rate:
        return signal
    n_in = int(signal.shape[0])
    n_out = resampled_length(n_in, from_rate, to_rate)
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
