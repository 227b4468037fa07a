"""Rules every modality's loader follows before and while it reads a signal.

A loader (``Modality.load``) turns what a user sends - a path, bytes, an array - into a tensor. Whatever it
is sent, it either returns a valid signal or raises :class:`anymal_host.errors.InvalidSignalError` saying
what is wrong and how to fix it; it never hangs, never reads without bound, and never lets a value through
that the encoder cannot use. The rules, and the helper here that implements each:

1. **Look before you open.** :func:`check_source_path` ``os.stat``\\ s a path and refuses a missing path,
   a folder, a named pipe, a socket or a device by what it is, before anything is opened (opening a pipe
   for reading blocks until a writer comes). :func:`open_source_file` does that check, opens without
   blocking and checks the opened file again, so a path swapped in between cannot slip through.
2. **Refuse by size before reading.** Every loader has a byte limit derived from its longest accepted
   signal; a file (:func:`check_source_path`) or a bytes source (:func:`check_source_size`) over it is
   refused before one byte of it is read. Loaders that parse text stream it and stop at their row limit,
   so time and memory follow the limit, not the file.
3. **Numbers are plain decimals.** Python's ``float()`` accepts ``1_0``, ``nan``, ``Infinity``
   and non-ASCII digits (and ``int(x, 0)`` ``0x10``); a data file that holds them is malformed, so cells go
   through :func:`parse_decimal` (ASCII ``[+-]digits[.digits][e[+-]digits]``), whose error gives the fix.
   Text tables are read with the ``csv`` module (quoting works); a row that comes back as one cell is
   reported with the delimiter it probably uses (:func:`guess_delimiter`).
4. **Values are finite and physical.** :func:`check_finite_range` refuses NaN and infinities, values that
   overflow float32 (the dtype encoders run in: ``1e39`` becomes ``inf`` there and poisons every output),
   and values outside the physical range of the unit, which are nearly always a unit mix-up.
5. **Long enough for the encoder.** Each modality computes the shortest input its encoder can take (after
   its own resampling) and refuses shorter ones in ``load`` with the minimum stated, instead of letting a
   convolution fail on an empty tensor. That rule is modality-specific and lives in each plugin.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from anymal_host.errors import InvalidSignalError

__all__ = [
    "FLOAT32_MAX",
    "check_source_path",
    "open_source_file",
    "check_source_size",
    "format_bytes",
    "parse_decimal",
    "guess_delimiter",
    "check_finite_range",
]

#: The largest finite float32: encoders run in float32, so anything above becomes ``inf`` there.
FLOAT32_MAX = float(np.finfo(np.float32).max)

# A plain decimal number: ASCII digits only ([0-9], not \d, which matches every script's digits).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "na", "n/a"}
# Delimiters a spreadsheet or logger uses instead of commas, with the name an error message gives them.
_DELIMITERS = ((";", "semicolons (';')"), ("\t", "tabs"), ("|", "vertical bars ('|')"))


def _kind_of(mode: int) -> str | None:
    """What a non-regular file is, in words, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def format_bytes(size: int) -> str:
    """``1536 -> '1.5 KiB'``: sizes in error messages, readable at a glance."""
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def check_source_size(size: int, *, max_bytes: int, what: str, fix: str = "cut it into shorter recordings") -> None:
    """Refuse ``size`` bytes when it is over ``max_bytes``; ``what`` names the source, ``fix`` says what to do."""
    if size > max_bytes:
        shown, limit = format_bytes(size), format_bytes(max_bytes)
        if shown == limit:  # "2.0 KiB, over the limit of 2.0 KiB" would read as a contradiction
            shown, limit = f"{size} bytes", f"{max_bytes} bytes"
        raise InvalidSignalError(f"{what} is {shown}, over the limit of {limit}: {fix}")


def _check_stat(st: os.stat_result, path: Path, *, max_bytes: int, what: str, fix: str) -> int:
    kind = _kind_of(st.st_mode)
    if kind == "a folder":
        raise InvalidSignalError(f"{what} {str(path)!r} is a folder, not a file: pass the path of a file inside it")
    if kind is not None:
        raise InvalidSignalError(f"{what} {str(path)!r} is {kind}, not a regular file: save the data to a file "
                                 "first and pass that file's path (or pass its bytes)")
    check_source_size(st.st_size, max_bytes=max_bytes, what=f"{what} {str(path)!r}", fix=fix)
    return int(st.st_size)


def check_source_path(path: str | os.PathLike[str], *, max_bytes: int, what: str = "file",
                      fix: str = "cut it into shorter recordings") -> int:
    """Check that ``path`` is an existing regular file of at most ``max_bytes``; return its size in bytes.

    Uses ``os.stat`` only - nothing is opened - so a named pipe is refused instead of blocking the caller.
    ``what`` names the source in messages (``"IMU file"``); ``fix`` says what to do about a file too large.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidSignalError(f"{what} {str(path)!r} does not exist: check the path") from None
    except NotADirectoryError:
        raise InvalidSignalError(f"{what} {str(path)!r} does not exist (a part of the path is a file, not a "
                                 "folder): check the path") from None
    except PermissionError:
        raise InvalidSignalError(f"{what} {str(path)!r} cannot be read (permission denied): make it readable by "
                                 "the user this process runs as") from None
    except (OSError, ValueError) as exc:  # name too long, NUL byte in the path, loop of symlinks...
        raise InvalidSignalError(f"{what} {str(path)!r} cannot be opened ({exc}): check the path") from None
    return _check_stat(st, path, max_bytes=max_bytes, what=what, fix=fix)


def open_source_file(path: str | os.PathLike[str], *, max_bytes: int, what: str = "file",
                     fix: str = "cut it into shorter recordings") -> BinaryIO:
    """:func:`check_source_path`, then open ``path`` for binary reading without blocking.

    The opened descriptor is checked again (``fstat``): a path replaced by a pipe or a larger file between
    the check and the open is refused too. Readers should still read at most ``max_bytes`` (+1 to notice a
    file that grew while being read).
    """
    check_source_path(path, max_bytes=max_bytes, what=what, fix=fix)
    path = Path(path)
    # O_NONBLOCK: should the path have become a pipe since the check, open() returns instead of waiting for
    # a writer; on a regular file the flag does nothing.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InvalidSignalError(f"{what} {str(path)!r} cannot be opened ({exc.strerror or exc}): check the "
                                 "path and its permissions") from None
    try:
        _check_stat(os.fstat(fd), path, max_bytes=max_bytes, what=what, fix=fix)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here on
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def parse_decimal(cell: str, *, what: str) -> float:
    """``cell`` as a float if it is a plain ASCII decimal (``-1.5``, ``2e-3``, ``.5``); otherwise raise.

    ``what`` names the place (``"data.csv, line 3, column 2"``). The error names the kind of bad number
    (missing value, digit separator, hexadecimal, decimal comma...) and the fix.
    """
    text = cell.strip()
    if _DECIMAL.fullmatch(text):
        return float(text)
    raise InvalidSignalError(f"{what}: {cell!r} is not a number: {_number_fix(text)}")


def _number_fix(text: str) -> str:
    lowered = text.lower()
    if not text:
        return "the cell is empty; fill or drop the missing sample"
    if lowered in _NOT_FINITE_WORDS:
        return "missing or infinite values are refused; fill or drop the missing samples"
    if "_" in text and _DECIMAL.fullmatch(text.replace("_", "")):
        return "remove the '_' digit separators (write 10, not 1_0)"
    if re.fullmatch(r"[+-]?0[xXoObB][0-9a-fA-F_]+", text):
        return "write it as a decimal number, not in hexadecimal, octal or binary notation"
    if re.fullmatch(r"[+-]?[0-9]+,[0-9]+", text):
        return "use a decimal point, not a decimal comma (write 0.5, not 0,5)"
    if text.isdecimal() or any(ch.isdigit() and not ch.isascii() for ch in text):
        return "write the digits 0-9 (ASCII), not digits of another script"
    return "remove text, units and spaces: write a plain decimal number such as -0.25 or 1.5e-3"


def guess_delimiter(text: str, *, spaces: bool = True) -> str | None:
    """Name the column delimiter ``text`` (one row read as a single cell) probably uses, or None.

    ``spaces=False`` ignores spaces, for cells of a row that did split (a header name may hold a space).
    """
    for char, name in _DELIMITERS:
        if char in text:
            return name
    if spaces and len(text.split()) > 1:
        return "spaces"
    return None


def check_finite_range(array: np.ndarray, *, what: str, unit: str = "", low: float | None = None,
                       high: float | None = None, fix: str = "", index_names: Sequence[str] = ()) -> None:
    """Refuse NaN/inf, values beyond float32, and values outside ``[low, high]`` (the physical range).

    ``what`` names the signal (``"IMU accelerometer"``), ``unit`` its unit (``"g"``), ``fix`` what to do
    about an out-of-range value (typically: check the unit). ``index_names`` names the axes of ``array`` in
    messages (``("sample", "channel")`` -> "at sample 12, channel 3"). Works on any shape, without copying
    more than a boolean mask.
    """
    values = np.asarray(array)

    def where(mask: np.ndarray) -> str:
        first = np.argwhere(mask)[0]
        names = list(index_names) + [f"axis {i}" for i in range(len(index_names), values.ndim)]
        return ", ".join(f"{name} {int(i)}" for name, i in zip(names, first)) or "index ()"

    finite = np.isfinite(values)
    if not finite.all():
        raise InvalidSignalError(f"{what} contains NaN or infinite values (first at {where(~finite)}): fill or "
                                 "drop the missing samples before sending the recording")
    magnitude = np.abs(values)
    if values.size and magnitude.max() > FLOAT32_MAX:
        bad = magnitude > FLOAT32_MAX
        value = float(values[tuple(np.argwhere(bad)[0])])
        raise InvalidSignalError(f"{what} has the value {value:.6g} at {where(bad)}, which overflows float32 (largest "
                                 f"{FLOAT32_MAX:.4g}): {fix or 'check the unit and the scale of the values'}")
    outside = np.zeros(values.shape, dtype=bool)
    if low is not None:
        outside |= values < low
    if high is not None:
        outside |= values > high
    if outside.any():
        suffix = f" {unit}" if unit else ""
        value = float(values[tuple(np.argwhere(outside)[0])])
        span = (f"[{low:g}, {high:g}]" if low is not None and high is not None
                else f">= {low:g}" if low is not None else f"<= {high:g}")
        raise InvalidSignalError(f"{what} has the value {value:.6g}{suffix} at {where(outside)}, outside the "
                                 f"physical range {span}{suffix}: {fix or 'check the unit of the values'}")
