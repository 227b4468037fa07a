"""Reading a safetensors header without reading (or trusting) any tensor data.

The layout is: 8-byte little-endian header length N, N bytes of JSON ``{name: {dtype, shape, data_offsets},
"__metadata__": {str: str}}``, then the data. Parsing it here (stdlib only) lets the checks refuse a package
before a single weight is read, and bound the memory a malicious header can claim.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import PackageCorruptError, PackageTooLargeError, short_repr
from .files import DuplicateKeyError, open_regular, unique_keys

__all__ = ["DTYPE_BITS", "DTYPE_SIZES", "MAX_NDIM", "parse_safetensors_header", "TensorInfo", "SafetensorsHeader", "read_safetensors_header", "normalize_dtype"]

#: Bits per element of each safetensors dtype code (bits, not bytes: the 4- and 6-bit formats have no whole
#: byte count, and integer arithmetic cannot overflow on a hostile shape the way floats do).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6,
    "F6_E3M2": 6,
}
#: Bytes per element of each safetensors dtype code (kept for callers; derived from DTYPE_BITS).
DTYPE_SIZES: dict[str, float] = {code: bits / 8 for code, bits in DTYPE_BITS.items()}
#: Most dimensions a tensor may declare (torch supports 64; adapters use 1-4).
MAX_NDIM = 16

# torch dtype names / numpy-ish names -> safetensors codes, so callers may pass torch.float32 or "float32".
_ALIASES = {
    "float32": "F32", "float": "F32", "float16": "F16", "half": "F16", "bfloat16": "BF16", "float64": "F64",
    "double": "F64", "int64": "I64", "long": "I64", "int32": "I32", "int": "I32", "int16": "I16", "short": "I16",
    "int8": "I8", "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64", "bool": "BOOL",
    "complex64": "C64", "float8_e5m2": "F8_E5M2", "float8_e4m3fn": "F8_E4M3", "float8_e8m0fnu": "F8_E8M0",
}


def normalize_dtype(dtype: object) -> str:
    """``torch.float32`` / ``"float32"`` / ``"F32"`` -> ``"F32"`` (the safetensors code)."""
    text = str(dtype).removeprefix("torch.")
    if text.upper() in DTYPE_SIZES:
        return text.upper()
    if text in _ALIASES:
        return _ALIASES[text]
    raise ValueError(f"unknown tensor dtype {dtype!r}: use a torch dtype or a safetensors code such as 'F32'")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in the header."""

    # safetensors dtype code (``F32``, ``BF16``...).
    dtype: str
    # Shape as stored.
    shape: tuple[int, ...]
    # Byte range [begin, end) inside the data section.
    data_offsets: tuple[int, int]


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed, validated header."""

    # Tensor name -> its entry.
    tensors: dict[str, TensorInfo]
    # The ``__metadata__`` string map (empty when absent).
    metadata: dict[str, str]
    # Header length N in bytes (the JSON part).
    header_size: int
    # Total file size in bytes.
    file_size: int


def _bad(path: Path, what: str) -> PackageCorruptError:
    return PackageCorruptError(f"{path.name} is not a valid safetensors file ({what}): it is corrupt, truncated or "
                               f"not safetensors at all; download or export the adapter again")


def _entry(path: Path, name: str, raw: object) -> TensorInfo:
    if not isinstance(raw, dict):
        raise _bad(path, f"entry {name!r} is not an object")
    dtype, shape, offsets = raw.get("dtype"), raw.get("shape"), raw.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise _bad(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise _bad(path, f"tensor {name!r} has an invalid shape {short_repr(shape)}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise _bad(path, f"tensor {name!r} has invalid data_offsets {short_repr(offsets)}")
    span = offsets[1] - offsets[0]
    nbits = math.prod(shape) * DTYPE_BITS[dtype]  # exact integers: a hostile shape cannot overflow
    if nbits != 8 * span:
        raise _bad(path, f"tensor {name!r} of shape {short_repr(shape)} {dtype} needs {short_repr(nbits // 8)} bytes "
                         f"but its data_offsets span {span}")
    return TensorInfo(dtype, tuple(shape), (offsets[0], offsets[1]))


def _parse_json(path: Path, raw: bytes) -> object:
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    except DuplicateKeyError as e:
        raise _bad(path, f"the header has the key {e.key!r} twice") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, and ints past Python's digit limit
        raise _bad(path, f"header is not JSON: {short_repr(str(e), 120)}") from None
    except RecursionError:
        raise _bad(path, "header JSON is nested too deeply") from None


def _check_prefix(path: Path, prefix: bytes, file_size: int, max_header_bytes: int) -> int:
    """The header length from the 8-byte prefix, checked against the file size and the limit."""
    if len(prefix) < 8:
        raise _bad(path, f"only {file_size} bytes, shorter than the 8-byte header length")
    (header_size,) = struct.unpack("<Q", prefix)
    if header_size > file_size - 8:  # first: random bytes mostly land here, and it is the clearer message
        raise _bad(path, f"header of {header_size} bytes declared but the file has {file_size} bytes: truncated")
    if header_size > max_header_bytes:
        raise PackageTooLargeError(
            f"{path.name} declares a {header_size}-byte header, over the {max_header_bytes}-byte limit: the "
            f"file is corrupt or malicious; if it is genuine, raise the limit (PackageLimits.max_header_bytes)")
    return header_size


def _parse_header(path: Path, raw: bytes, header_size: int, file_size: int) -> SafetensorsHeader:
    header = _parse_json(path, raw)
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _bad(path, "__metadata__ is not a string-to-string map")
    tensors = {name: _entry(path, name, raw_entry) for name, raw_entry in header.items()}
    # The data section must be exactly covered, tensor after tensor: catches truncation and overlapping entries.
    end = 0
    for info in sorted(tensors.values(), key=lambda t: t.data_offsets):
        if info.data_offsets[0] != end:
            raise _bad(path, "tensor data overlaps or leaves gaps")
        end = info.data_offsets[1]
    data_size = file_size - 8 - header_size
    if end != data_size:
        what = "truncated" if end > data_size else "trailing bytes after the last tensor"
        raise _bad(path, f"{what}: the header describes {end} bytes of data, the file holds {data_size}")
    return SafetensorsHeader(tensors, dict(metadata), header_size, file_size)


def parse_safetensors_header(data: bytes, *, max_header_bytes: int, name: str = "adapter.safetensors") -> SafetensorsHeader:
    """Parse and validate the header of a whole safetensors file already in memory (``data``): the same checks
    as :func:`read_safetensors_header`, on the very bytes that will then be loaded."""
    path = Path(name)
    header_size = _check_prefix(path, data[:8], len(data), max_header_bytes)
    return _parse_header(path, data[8:8 + header_size], header_size, len(data))


def read_safetensors_header(path: str | os.PathLike[str], *, max_header_bytes: int,
                            name: str | None = None) -> SafetensorsHeader:
    """Parse and validate the header of ``path``: sizes, JSON, entries, and that the data section is complete
    and tightly packed (a truncated or padded file is refused). Reads at most ``8 + max_header_bytes`` bytes,
    from a regular file only (a pipe or device is refused before anything is read). ``name``: the package
    file name errors should use, when ``path`` is where its link points."""
    real = Path(path)
    path = Path(name) if name else real  # errors name the package file, not a cache blob it links to
    fd = open_regular(real, path.name)
    with os.fdopen(fd, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        header_size = _check_prefix(path, f.read(8), file_size, max_header_bytes)
        raw = f.read(header_size)
    return _parse_header(path, raw, header_size, file_size)
