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

from .errors import PackageCorruptError, PackageFileMissingError, PackageTooLargeError

__all__ = ["DTYPE_SIZES", "TensorInfo", "SafetensorsHeader", "read_safetensors_header", "normalize_dtype"]

#: Bytes per element of each safetensors dtype code.
DTYPE_SIZES: dict[str, float] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8, "F4": 0.5, "F6_E2M3": 0.75,
    "F6_E3M2": 0.75,
}

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
    if dtype not in DTYPE_SIZES:
        raise _bad(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(path, f"tensor {name!r} has an invalid shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise _bad(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
    if nbytes != offsets[1] - offsets[0]:
        raise _bad(path, f"tensor {name!r} of shape {shape} {dtype} needs {nbytes:g} bytes but its data_offsets span "
                         f"{offsets[1] - offsets[0]}")
    return TensorInfo(dtype, tuple(shape), (offsets[0], offsets[1]))


def read_safetensors_header(path: str | os.PathLike[str], *, max_header_bytes: int) -> SafetensorsHeader:
    """Parse and validate the header of ``path``: sizes, JSON, entries, and that the data section is complete
    and tightly packed (a truncated or padded file is refused). Reads at most ``8 + max_header_bytes`` bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _bad(path, f"only {file_size} bytes, shorter than the 8-byte header length")
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size > file_size - 8:  # first: random bytes mostly land here, and it is the clearer message
                raise _bad(path, f"header of {header_size} bytes declared but the file has {file_size} bytes: "
                                 f"truncated")
            if header_size > max_header_bytes:
                raise PackageTooLargeError(
                    f"{path.name} declares a {header_size}-byte header, over the {max_header_bytes}-byte limit: the "
                    f"file is corrupt or malicious; if it is genuine, raise the limit (PackageLimits.max_header_bytes)")
            raw = f.read(header_size)
    except FileNotFoundError:
        raise PackageFileMissingError(f"{path} is missing: the package is incomplete; download or export it again") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"header is not JSON: {e}") from None
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
