"""Type and range of every field of ``anymal_adapter.json``, checked before the config is used.

A config that parses as JSON can still ask for anything: a hidden size of 10**4000, a projector with a million
tokens, ``"weights_included": "no"`` (truthy), metrics that are lists, preprocessing nested a thousand levels
deep. Each field is checked here against a rule, so a bad package fails with the field's name and what it must
be, before the host builds (or allocates) anything from it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable

from .errors import PackageCorruptError, short_repr

__all__ = ["ConfigBounds", "DEFAULT_BOUNDS", "TOKEN_MODES", "validate_config_data", "validate_adapter_name",
           "json_depth"]

#: How an adapter's token count behaves: ``fixed`` (every attachment becomes exactly ``num_tokens`` tokens, as a
#: Perceiver resampler emits) or ``per_step`` (one token per encoder feature step, as linear and MLP
#: projectors emit; ``num_tokens`` is then the count for the modality's example input).
TOKEN_MODES = ("fixed", "per_step")


@dataclass(frozen=True)
class ConfigBounds:
    """The largest values a config may ask for. Generous for real adapters (LLaMA-2-70B has hidden size 8192,
    AnyMAL uses 64-256 tokens), small enough that a hostile config cannot make a host allocate gigabytes."""

    # Largest LLM hidden size / projector width.
    max_width: int = 65536
    # Most tokens one attachment may become.
    max_tokens: int = 4096
    # Deepest nesting of the free-form option maps (encoder.config, projector.options, preprocessing, lora).
    max_depth: int = 8
    # Longest string field (names, fingerprint, version); description has its own limit.
    max_string: int = 512
    # Longest description (model-card text).
    max_description: int = 64 << 10


DEFAULT_BOUNDS = ConfigBounds()
_MODALITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # used with fullmatch: "$" would let "toy\n" through
# Unicode categories no name should hold: controls (C0, C1 such as the terminal CSI), format characters (the
# right-to-left override that makes a name print as another), surrogates (not encodable), line and paragraph
# separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _unprintable(text: str) -> bool:
    return any(unicodedata.category(ch) in _UNPRINTABLE for ch in text)


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping once past ``limit`` (so a hostile value costs little)."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def validate_adapter_name(name: Any, what: str = "adapter name") -> str:
    """A non-empty name without surrounding spaces or control characters (what the host lists adapters by)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} {name!r} is empty: give the adapter a name such as 'imu-linear'")
    if name != name.strip() or _unprintable(name) or len(name) > 128:
        raise ValueError(f"{what} {name[:80]!r} has surrounding spaces, control or invisible format characters, or "
                         f"over 128 characters: use letters, digits, '-', '_' and '.'")
    return name


# ----- one rule per field -------------------------------------------------------------------------------------

Rule = Callable[[Any, ConfigBounds], str | None]  # returns what the value must be, or None when it is fine


def _string(limit_attr: str = "max_string", *, allow_empty: bool = False, allow_none: bool = False) -> Rule:
    def rule(value: Any, bounds: ConfigBounds) -> str | None:
        limit = getattr(bounds, limit_attr)
        if value is None and allow_none:
            return None
        if not isinstance(value, str) or (not allow_empty and not value.strip()) or len(value) > limit:
            empty = "" if allow_empty else "non-empty "
            return f"a {empty}string of at most {limit} characters" + (" or null" if allow_none else "")
        if any(unicodedata.category(ch) == "Cs" for ch in value):
            return "text without lone surrogates (they cannot be written as UTF-8)"
        return None
    return rule


def _int(low: int, high_attr: str) -> Rule:
    def rule(value: Any, bounds: ConfigBounds) -> str | None:
        high = getattr(bounds, high_attr)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"an integer from {low} to {high}"
        return None
    return rule


def _bool(value: Any, bounds: ConfigBounds) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _options(*, allow_none: bool = False) -> Rule:
    """A JSON object with string keys, nested at most ``max_depth`` levels, whose integers stay within
    ``max_width``: options size what is built (a Perceiver's depth, an encoder's width), and building a
    million layers takes minutes and gigabytes even on the meta device."""
    def rule(value: Any, bounds: ConfigBounds) -> str | None:
        if value is None and allow_none:
            return None
        if (not isinstance(value, dict) or not all(isinstance(k, str) for k in value)
                or json_depth(value, bounds.max_depth) > bounds.max_depth):
            return f"a JSON object nested at most {bounds.max_depth} levels" + (" or null" if allow_none else "")
        if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > bounds.max_width for v in _leaves(value)):
            return f"a JSON object whose whole numbers are at most {bounds.max_width} in size"
        return None
    return rule


def _leaves(value: Any) -> list[Any]:
    """Every scalar inside a JSON value (depth is bounded before this is called)."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _embedding_scale(value: Any, bounds: ConfigBounds) -> str | None:
    """An LLM's embedding root mean square: real LLMs sit around 0.01-1; a huge value would switch the token
    scale check off."""
    ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                           and 1e-6 <= value <= 100)
    return None if ok else "a number from 1e-06 to 100, or null"


def _metrics(value: Any, bounds: ConfigBounds) -> str | None:
    """``{name: number | string | bool | null}``: listings print them, so they must be flat and finite."""
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and len(k) <= bounds.max_string and (
            v is None or isinstance(v, (bool, str)) and len(str(v)) <= bounds.max_string
            or isinstance(v, int) and abs(v) < 10**18 or isinstance(v, float) and math.isfinite(v))
        for k, v in value.items())
    return None if ok else "a flat JSON object of names to finite numbers, strings, true/false or null"


def _modality(value: Any, bounds: ConfigBounds) -> str | None:
    ok = isinstance(value, str) and _MODALITY.fullmatch(value)
    return None if ok else "a modality name: letters, digits, '.', '_' or '-', at most 64 characters"


def _name(value: Any, bounds: ConfigBounds) -> str | None:
    try:
        validate_adapter_name(value)
    except ValueError as e:
        return f"a usable adapter name ({e})"
    return None


def _token_mode(value: Any, bounds: ConfigBounds) -> str | None:
    return None if value is None or value in TOKEN_MODES else f"one of {', '.join(TOKEN_MODES)}, or null"


#: dotted key -> (required, rule). Keys not listed here are unknown (dropped with a warning by parse_config).
FIELD_RULES: dict[str, tuple[bool, Rule]] = {
    "name": (True, _name),
    "modality": (True, _modality),
    "num_tokens": (True, _int(1, "max_tokens")),
    "token_mode": (False, _token_mode),
    "encoder.name": (True, _string()),
    "encoder.config": (False, _options()),
    "encoder.weights_included": (False, _bool),
    "encoder.trainable": (False, _bool),
    "projector.type": (True, _string()),
    "projector.in_dim": (True, _int(1, "max_width")),
    "projector.out_dim": (True, _int(1, "max_width")),
    "projector.options": (False, _options()),
    "llm.name": (True, _string()),
    "llm.hidden_size": (True, _int(1, "max_width")),
    "llm.fingerprint": (True, _string()),
    "llm.revision": (False, _string(allow_none=True)),
    "llm.embedding_rms": (False, _embedding_scale),
    "preprocessing": (False, _options()),
    "lora": (False, _options(allow_none=True)),
    "metrics": (False, _metrics),
    "description": (False, _string("max_description", allow_empty=True)),
    "anymal_version": (False, _string(allow_empty=True)),
}
_OBJECTS = ("encoder", "projector", "llm")


def validate_config_data(data: dict[str, Any], source: str, bounds: ConfigBounds = DEFAULT_BOUNDS) -> None:
    """Check the type and range of every known field of a (migrated) config; raises
    :class:`PackageCorruptError` naming the first bad field, its value and what it must be."""
    for key in _OBJECTS:
        if key not in data:
            raise PackageCorruptError(f"{source} is missing the required key '{key}': re-export the adapter with "
                                      f"save_adapter_package, or add the key")
        if not isinstance(data[key], dict):
            raise PackageCorruptError(f"{source}: '{key}' must be a JSON object, not {short_repr(data[key], 60)}: fix "
                                      f"anymal_adapter.json")
    for dotted, (required, rule) in FIELD_RULES.items():
        parent, _, leaf = dotted.rpartition(".")
        node = data[parent] if parent else data
        if leaf not in node:
            if required:
                raise PackageCorruptError(f"{source} is missing the required key '{dotted}': re-export the adapter "
                                          f"with save_adapter_package, or add the key")
            continue
        must = rule(node[leaf], bounds)
        if must is not None:
            raise PackageCorruptError(f"{source}: '{dotted}' is {short_repr(node[leaf], 60)} but must be {must}: fix "
                                      f"anymal_adapter.json or export the adapter again")
    if data["projector"]["out_dim"] != data["llm"]["hidden_size"]:
        raise PackageCorruptError(
            f"{source}: projector.out_dim is {data['projector']['out_dim']} but llm.hidden_size is "
            f"{data['llm']['hidden_size']}; the projector must output the LLM's hidden size: fix the config")
