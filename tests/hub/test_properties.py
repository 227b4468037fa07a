"""Property-based tests of the parsers every package goes through: the safetensors header reader and the config
parser (bytes on disk -> JSON -> migration -> field rules). Whatever the input, the only exceptions that may
come out are the documented ones (``AdapterPackageError`` subclasses), and no example may hang: hypothesis'
deadline flags a slow example and pytest-timeout ends a hung test.

Each property runs 1,000 generated examples in CI, derandomized (the same examples on every run) and with no
example database, so a failure reproduces from the test alone.
"""

from __future__ import annotations

import json
import math
import struct
import warnings
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters_hub import AdapterConfig, AdapterPackageError, parse_config, read_package_config
from adapters_hub.schema import config_to_json
from adapters_hub.st_header import DTYPE_BITS, SafetensorsHeader, parse_safetensors_header, read_safetensors_header

from .conftest import make_config

PROPERTY = settings(max_examples=1000, deadline=timedelta(seconds=2), derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# ----- safetensors headers ------------------------------------------------------------------------------------

_ints = st.one_of(st.integers(-3, 64), st.integers(-(2**70), 2**70), st.just(10**200))
_dtypes = st.one_of(st.sampled_from(sorted(DTYPE_BITS)), st.text(max_size=6), st.integers(), st.none())
_entries = st.fixed_dictionaries({}, optional={
    "dtype": _dtypes,
    "shape": st.one_of(st.lists(_ints, max_size=5), st.lists(st.just(1), min_size=17, max_size=20), _ints, st.text()),
    "data_offsets": st.one_of(st.lists(_ints, min_size=0, max_size=3), st.text(), st.none()),
})
_metadata = st.one_of(st.none(), st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), _ints), max_size=4),
                      st.lists(st.integers(), max_size=2))
_headers = st.dictionaries(st.text(max_size=12), st.one_of(_entries, _ints, st.text(), st.none()), max_size=5).flatmap(
    lambda d: _metadata.map(lambda m: d if m is None else {**d, "__metadata__": m}))


@st.composite
def near_valid_files(draw) -> bytes:
    """A valid file (tensors packed back to back, right prefix) with at most one thing spoiled, so the checks
    deep in the reader (byte counts, coverage, overlaps) are reached, not only the JSON parser."""
    header: dict = {}
    offset = 0
    for i in range(draw(st.integers(0, 4))):
        dtype = draw(st.sampled_from(sorted(DTYPE_BITS)))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        nbytes = math.prod(shape) * DTYPE_BITS[dtype] // 8
        header[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if draw(st.booleans()):
        header["__metadata__"] = {"format": "pt"}
    data_size = offset
    spoil = draw(st.sampled_from(["none", "huge-shape", "offset", "data", "dtype", "order"]))
    names = [k for k in header if k != "__metadata__"]
    if names and spoil == "huge-shape":
        header[draw(st.sampled_from(names))]["shape"] = draw(st.lists(st.sampled_from([10**200, 2**64, 3]),
                                                                      min_size=1, max_size=3))
    elif names and spoil == "offset":
        header[draw(st.sampled_from(names))]["data_offsets"][draw(st.integers(0, 1))] += draw(st.integers(-3, 3))
    elif names and spoil == "dtype":
        header[draw(st.sampled_from(names))]["dtype"] = draw(st.sampled_from(sorted(DTYPE_BITS)))
    elif len(names) > 1 and spoil == "order":
        a, b = names[0], names[1]
        header[a]["data_offsets"], header[b]["data_offsets"] = header[b]["data_offsets"], header[a]["data_offsets"]
    elif spoil == "data":
        data_size = max(0, data_size + draw(st.integers(-4, 4)))
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(data_size)


@st.composite
def safetensors_files(draw) -> bytes:
    """Whole files: a JSON header (structured, near-valid or raw bytes), a length prefix right or wrong, data."""
    kind = draw(st.sampled_from(["near-valid", "near-valid", "structured", "raw", "deep", "tiny"]))
    if kind == "near-valid":
        return draw(near_valid_files())
    if kind == "tiny":
        return draw(st.binary(max_size=12))
    if kind == "deep":
        depth = draw(st.integers(1, 5000))
        raw = b"[" * depth + b"]" * draw(st.integers(0, depth))
    elif kind == "raw":
        raw = draw(st.binary(max_size=200))
    else:
        raw = json.dumps(draw(_headers)).encode()
    data = draw(st.binary(max_size=64))
    length = draw(st.one_of(st.just(len(raw)), st.integers(0, 2**64 - 1), st.integers(0, len(raw) + 8)))
    return struct.pack("<Q", length) + raw + data


@pytest.mark.timeout(300)
@PROPERTY
@given(data=safetensors_files())
def test_header_reader_raises_only_documented_errors(data):
    try:
        header = parse_safetensors_header(data, max_header_bytes=1 << 16)
    except AdapterPackageError:
        return
    # Accepted: every entry is consistent and the data section is exactly covered.
    assert isinstance(header, SafetensorsHeader)
    assert header.file_size == len(data)
    covered = sum(info.data_offsets[1] - info.data_offsets[0] for info in header.tensors.values())
    assert covered == len(data) - 8 - header.header_size
    for info in header.tensors.values():
        assert math.prod(info.shape) * DTYPE_BITS[info.dtype] == 8 * (info.data_offsets[1] - info.data_offsets[0])


@pytest.mark.timeout(300)
@settings(PROPERTY, max_examples=200)  # the file path adds the open and read; 200 suffice next to the above
@given(data=safetensors_files())
def test_header_reader_from_a_file_agrees_with_the_bytes_reader(tmp_path, data):
    path = tmp_path / "adapter.safetensors"
    path.write_bytes(data)
    try:
        from_bytes = parse_safetensors_header(data, max_header_bytes=1 << 16)
    except AdapterPackageError as e:
        with pytest.raises(type(e)):
            read_safetensors_header(path, max_header_bytes=1 << 16)
        return
    assert read_safetensors_header(path, max_header_bytes=1 << 16) == from_bytes


# ----- configs ------------------------------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), _ints, st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=20))
_json = st.recursive(_scalars, lambda children: st.one_of(st.lists(children, max_size=3),
                                                          st.dictionaries(st.text(max_size=8), children, max_size=3)),
                     max_leaves=12)
_FIELDS = ["name", "modality", "num_tokens", "token_mode", "encoder", "projector", "llm", "preprocessing", "lora",
           "metrics", "description", "anymal_version", "schema_version", "num_query_tokens",
           "encoder.name", "encoder.config", "encoder.weights_included", "encoder.trainable", "projector.type",
           "projector.kind", "projector.in_dim", "projector.out_dim", "projector.options", "llm.name",
           "llm.hidden_size", "llm.fingerprint", "llm.revision"]


@st.composite
def configs(draw) -> object:
    """A valid config with up to four fields replaced (or deleted), an arbitrary JSON value, or deep nesting."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "arbitrary", "deep"]))
    if kind == "arbitrary":
        return draw(_json)
    if kind == "deep":
        value: object = 1
        for _ in range(draw(st.integers(1, 60))):
            value = {"a": value}
        return {**make_config().to_dict(), "preprocessing": value}
    data = make_config().to_dict()
    data["schema_version"] = draw(st.sampled_from([0, 1, 1, 1]))
    for _ in range(draw(st.integers(1, 4))):
        dotted = draw(st.sampled_from(_FIELDS))
        parent, _, leaf = dotted.rpartition(".")
        node = data.get(parent) if parent else data
        if not isinstance(node, dict):
            continue
        if draw(st.booleans()) and leaf in node:
            del node[leaf]
        else:
            node[leaf] = draw(_json)
    return data


def _check_accepted(config: AdapterConfig) -> None:
    """What every accepted config guarantees to the host."""
    assert config.name.strip() == config.name != ""
    assert 1 <= config.num_tokens <= 4096 and config.token_mode in ("fixed", "per_step", None)
    assert config.projector.out_dim == config.llm.hidden_size <= 65536
    assert isinstance(config.encoder.weights_included, bool) and isinstance(config.metrics, dict)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in config.metrics.values())
    json.loads(config_to_json(config))  # writes back as strict JSON
    config.tokens_text()


@pytest.mark.timeout(300)
@PROPERTY
@given(data=configs())
def test_config_parser_raises_only_documented_errors(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown keys warn; that is documented behaviour
        try:
            config = parse_config(data)
        except AdapterPackageError:
            return
    _check_accepted(config)


@pytest.mark.timeout(300)
@settings(PROPERTY, max_examples=1000)
@given(raw=st.one_of(st.binary(max_size=300), configs().map(lambda d: json.dumps(d, allow_nan=True).encode()),
                     st.integers(1, 3000).map(lambda n: b'{"num_tokens": ' + b"9" * n + b"}")))
def test_config_file_reader_raises_only_documented_errors(tmp_path, raw):
    (tmp_path / "anymal_adapter.json").write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            config = read_package_config(tmp_path)
        except AdapterPackageError:
            return
    _check_accepted(config)
