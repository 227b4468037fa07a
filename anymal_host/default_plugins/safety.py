"""The built-in safety checks, registered through the same hooks third-party safety plugins use. Both are off
until configured:

- **Blocked words** (``ANYMAL_SAFETY_WORDS=path``): a UTF-8 file with one word or phrase a line (``#`` starts a
  comment). A request whose text, or an answer whose text, holds one of them as whole words (any case, any
  run of spaces between the words of a phrase) is refused, naming the term.
- **Signal sanity** (``ANYMAL_SAFETY_SIGNALS=1``): an attachment whose preprocessed signal is empty, holds NaN
  or infinities, has values beyond ``±10,000`` (preprocessed signals are normalised: such values mean a broken
  loader or a crafted input), or is constant (a blank frame, silence, a sensor that sent one value) is refused.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from anymal_host.hookspecs import hookimpl

__all__ = ["WORDS_ENV", "SIGNALS_ENV", "MAX_ABS_VALUE", "check_input_text", "check_output_text", "check_input_signal"]

WORDS_ENV = "ANYMAL_SAFETY_WORDS"
SIGNALS_ENV = "ANYMAL_SAFETY_SIGNALS"
#: Largest magnitude a preprocessed signal may hold under the signal sanity check.
MAX_ABS_VALUE = 1e4
_MAX_LIST_BYTES = 1 << 20  # a word list is short; a bigger file is a mistake


@lru_cache(maxsize=4)
def _patterns(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The blocked terms of the file at ``path`` (re-read when it changes: the cache key holds its mtime)."""
    if size > _MAX_LIST_BYTES:
        raise ValueError(f"{WORDS_ENV} names {path}, {size} bytes: a word list of at most 1 MiB is expected")
    terms = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        term = line.split("#", 1)[0].strip().lower()
        if term:
            words = term.split()
            terms.append((term, re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)")))
    return tuple(terms)


def _blocked(text: str, what: str) -> str | None:
    path = os.environ.get(WORDS_ENV)
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FileNotFoundError(f"{WORDS_ENV}={path!r} cannot be read ({exc.strerror}): point it at a word list, "
                                "or unset it to turn the check off") from None
    lowered = text.lower()
    for term, pattern in _patterns(path, st.st_mtime_ns, st.st_size):
        if pattern.search(lowered):
            return f"{what} contains the blocked term {term!r} (the word list {WORDS_ENV} names)"
    return None


@hookimpl
def check_input_text(text: str) -> str | None:
    return _blocked(text, "the request")


@hookimpl
def check_output_text(text: str) -> str | None:
    return _blocked(text, "the answer")


@hookimpl
def check_input_signal(modality: str, signal: Any) -> str | None:
    if os.environ.get(SIGNALS_ENV, "").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    import torch

    values = torch.as_tensor(signal).detach().float()
    if values.numel() == 0:
        return f"the {modality} attachment is empty"
    if not bool(torch.isfinite(values).all()):
        return f"the {modality} attachment holds NaN or infinite values"
    largest = float(values.abs().max())
    if largest > MAX_ABS_VALUE:
        return (f"the {modality} attachment holds values up to {largest:.3g}, beyond ±{MAX_ABS_VALUE:g} after "
                "preprocessing")
    if float(values.max() - values.min()) == 0.0:
        return f"the {modality} attachment is constant (a blank image, silence, one repeated reading): it shows nothing"
    return None
