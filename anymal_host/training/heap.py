"""Why training on a 4-bit or 8-bit LLM on a CPU pins glibc's mmap threshold, and the two helpers that do it.

bitsandbytes computes with a quantized weight by dequantizing it into a temporary in the compute dtype (float32
on a CPU): 4-bit layers in every forward pass, in the recomputation gradient checkpointing does and in the
backward pass, 8-bit layers in the backward pass. For the default LLM in 4-bit that is 450 temporaries per
step, 270 of them the MLP's 3.4 MiB. glibc serves a request smaller than its mmap threshold from its heap, and
that threshold moves: each time a larger mapped block is freed it rises to that block's size (up to 32 MiB),
which loading a model does many times. So these temporaries came from the heap, between the layer inputs that
gradient checkpointing keeps, and what they freed was left in pieces the next layer did not reuse: in the first
step of a 4-bit stage-1 run on the default LLM the heap grew by 9.4 MiB per decoder layer while what was in use
grew by 0.75 MiB, and the run peaked at 689-695 MiB above the imports with 330-400 MiB of it free heap that
glibc kept (``bench/quantize.py``; float32 keeps its weights and makes no such copies).

:func:`pin_mmap_threshold` fixes the threshold (one set with ``mallopt`` no longer moves) at the size of the
largest dequantized weight, from :func:`dequantized_weight_bytes`: a heap without room for one of those
temporaries maps it on its own instead of growing, and unmaps it when it is freed, while smaller tensors keep
the heap's speed. The same 4-bit run then peaks at 567-584 MiB, for 5-10% more time per step. glibc's
initial 128 KiB would map every activation too: about 430 MiB, but each step half as slow again (every block
mapped and zero-filled afresh). The threshold stays fixed for the rest of the process (glibc cannot be told to
move it again); other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

import torch

__all__ = ["dequantized_weight_bytes", "pin_mmap_threshold", "M_MMAP_THRESHOLD", "MAX_MMAP_THRESHOLD"]

#: glibc's ``mallopt`` parameter number for the mmap threshold (``<malloc.h>``).
M_MMAP_THRESHOLD = -3
#: The largest threshold glibc accepts on 64-bit systems, and the highest its moving threshold goes (32 MiB).
MAX_MMAP_THRESHOLD = 32 * 2**20


def dequantized_weight_bytes(model: Any, dtype: torch.dtype) -> int:
    """Bytes of the largest weight of ``model``'s bitsandbytes layers (4-bit or 8-bit) once dequantized to
    ``dtype``, the compute dtype; 0 when nothing in it is quantized."""
    if "bitsandbytes" not in sys.modules:  # a model with its layers has imported it; others need not
        return 0
    from bitsandbytes.nn import Linear4bit, Linear8bitLt

    itemsize = torch.empty((), dtype=dtype).element_size()
    return max((m.in_features * m.out_features * itemsize for m in model.modules()
                if isinstance(m, (Linear4bit, Linear8bitLt))), default=0)


def pin_mmap_threshold(nbytes: int) -> bool:
    """Fix glibc's mmap threshold at ``nbytes`` (at most :data:`MAX_MMAP_THRESHOLD`) for this process: a block
    of that size or more that the heap has no free room for is then mapped on its own, and unmapped when freed,
    instead of growing the heap. Returns whether it was set: False for ``nbytes <= 0`` and off glibc (macOS,
    Windows, musl)."""
    if nbytes <= 0 or not _on_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, min(int(nbytes), MAX_MMAP_THRESHOLD)))


def _on_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False
