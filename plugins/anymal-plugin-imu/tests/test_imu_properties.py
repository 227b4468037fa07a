"""Property-based tests of the IMU loader: whatever it is sent, ``load`` + ``preprocess`` either return the
canonical encoder input or raise the documented InvalidSignalError - never another exception, never a hang.

Each property runs 1,000 generated examples, deterministically (``derandomize=True``, no example database),
so CI sees the same inputs on every run. ``deadline`` is a per-example hang detector set three orders of
magnitude above a typical example (about a millisecond), not a speed requirement; ``pytest.mark.timeout``
stops a test that hangs outright.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from anymal_host.errors import InvalidSignalError
from anymal_plugin_imu import ImuModality
from anymal_plugin_imu import signals as sig

EXAMPLES = 1000
PROPERTY = settings(max_examples=EXAMPLES, deadline=2000, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
IMU = ImuModality()


def _outcome(source, **options) -> torch.Tensor | None:
    """The preprocessed signal, or None after a documented refusal; anything else fails the property."""
    try:
        out = IMU.preprocess(IMU.load(source, **options), **options)
    except InvalidSignalError as exc:
        message = str(exc)
        assert ": " in message and len(message) > 20, message  # what is wrong, then how to fix it
        # --hypothesis-show-statistics lists which refusals the strategies reached, and how often.
        event("refused: " + re.sub(r"[0-9]+", "N", message.split(":")[0])[:50])
        return None
    event("accepted")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.dim() == 2 and out.shape[1] == sig.CHANNELS
    windows = options.get("max_windows", 1)  # preprocess keeps the central max_windows windows (None: all)
    longest = sig.WINDOW * windows if windows is not None else int(sig.MAX_SECONDS * sig.SAMPLE_RATE) + 1
    assert sig.MIN_SAMPLES <= out.shape[0] <= longest
    assert bool(torch.isfinite(out).all())
    return out


# ----- strategies ------------------------------------------------------------------------------------------

# Cells a CSV may hold: ordinary and extreme numbers, Python-only syntax, text, quotes, other delimiters.
_TRICKY = ["1_0", "0x10", "nan", "NaN", "inf", "-Infinity", "", " ", "1e39", "1e400", "-1e-400", "\u0661", "1,5",
           '"0.5"', '"1', "1.0g", "+", "-", ".", "e5", "1e", "0;1", "1\t2", "acc_x", "gyro_z", "#", "9" * 400]
_plain = st.floats(min_value=-3, max_value=3).map(lambda v: f"{v:.4f}")
_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr), _plain,
                     st.integers(-10**6, 10**6).map(str))
_cells = st.one_of(_numbers, _numbers, _numbers, st.sampled_from(_TRICKY), st.text(max_size=6))
_rate_values = st.one_of(st.sampled_from(["50", "100", "1", "0.5", "abc", "", "-5", "0", "1e9", "1_00", "25 Hz",
                                          "nan", "1000", "1000.5"]), st.text(max_size=8),
                         st.floats(0.01, 2000).map(lambda v: f"{v:g}"), st.integers(1, 150).map(str))
_comments = st.one_of(st.builds(lambda v: f"# sample_rate={v}", _rate_values),
                      st.builds(lambda v: f"# Sampling rate: {v} Hz", _rate_values),
                      st.sampled_from(["# recorded at home", "#", "# sample rates vary"]))
_headers = st.sampled_from(["acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z", "ax,ay,az", "gx,gy,gz,ax,ay,az",
                            "a,b,c,d,e,f", "acc_x;acc_y;acc_z", "time,acc_x,acc_y,acc_z"])

# Cells Python's float() reads (as the old loader did) that a recording must not hold: Python-only syntax,
# non-finite values, other scripts' digits, a value that overflows float32.
_PYTHON_ONLY = ["1_0", "+1_000.5", "nan", "NaN", "-inf", "Infinity", "\u0661\u0662", "\uff11", "1e39"]
_valid_comments = st.sampled_from(["# sample_rate=50", "# sample_rate=100", "# Sampling rate: 25 Hz", "# at home"])


@st.composite
def csv_texts(draw) -> tuple[bytes, bool]:
    """``(CSV bytes, whether load must refuse them)``: half are well-formed recordings (quoting, header, rate
    comment, line endings vary), some with one planted bad cell; half are wild (any cells, widths, delimiters,
    comments in any place, bytes overwritten), where either outcome may be right."""
    if draw(st.booleans()):
        width = draw(st.sampled_from([3, 6]))
        quote = draw(st.sampled_from(["", '"']))
        row = [f"{quote}{cell}{quote}" for cell in draw(st.lists(_plain, min_size=width, max_size=width))]
        lines = draw(st.lists(_valid_comments, max_size=2))
        lines += [",".join(sig.CHANNEL_NAMES[:width])] if draw(st.booleans()) else []
        data_rows = [",".join(row)] * draw(st.integers(50, 200))
        planted = draw(st.booleans())
        if planted:  # one cell that Python's float() reads but a recording must not hold
            bad = row.copy()
            bad[draw(st.integers(0, width - 1))] = draw(st.sampled_from(_PYTHON_ONLY))
            data_rows[draw(st.integers(0, len(data_rows) - 1))] = ",".join(bad)
        lines += data_rows
        newline = draw(st.sampled_from(["\n", "\r\n"]))
        return (newline.join(lines) + newline).encode("utf-8"), planted
    width = draw(st.sampled_from([3, 6, 6, 1, 2, 7]))
    n_rows = draw(st.integers(0, 160))
    row = draw(st.lists(_cells, min_size=width, max_size=width))
    base = [",".join(row)] * n_rows  # one row repeated, so long files stay cheap to generate
    rows = [",".join(r) for r in draw(st.lists(st.lists(_cells, min_size=width, max_size=width), max_size=8))]
    for r in rows:
        base.insert(draw(st.integers(0, len(base))), r)
    lines = draw(st.lists(_comments, max_size=2)) + ([draw(_headers)] if draw(st.booleans()) else []) + base
    if lines and draw(st.booleans()):  # move one line (a comment below the data, a header in the middle...)
        lines.insert(draw(st.integers(0, len(lines))), lines.pop(draw(st.integers(0, len(lines) - 1))))
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t", " "]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(line.replace(",", delimiter) for line in lines) + draw(st.sampled_from(["", newline]))
    data = text.encode("utf-8")
    if data and draw(st.booleans()):  # overwrite a few bytes anywhere (invalid UTF-8, NUL, stray quotes...)
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.sampled_from([0, 0x22, 0x2C, 0x0A, 0xFF, 0xC3, 0x3B]))
        data = bytes(buf)
    return data, False


_dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int8, np.int32, np.int64, np.uint8, np.uint64,
                           np.bool_, np.complex64])
_shapes = st.one_of(
    st.tuples(st.integers(0, 400), st.sampled_from([3, 6])),  # mostly the accepted layouts
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12),
)


_values = st.one_of(st.floats(-3, 3), st.sampled_from([0.0, 9.81, 1e39, -1e30, 401.0, 70.0, np.nan, np.inf, -np.inf]))


@st.composite
def arrays(draw) -> np.ndarray:
    """Arrays of random shapes and dtypes, with NaN, infinities and huge values among ordinary ones."""
    dtype = np.dtype(draw(_dtypes))
    shape = draw(_shapes)
    if dtype.kind not in "fc":
        return draw(hnp.arrays(dtype, shape))
    values = draw(hnp.arrays(np.float64, shape, elements=_values))
    with np.errstate(all="ignore"):  # 1e39 -> inf in float16/float32: exactly the inputs wanted here
        return values.astype(dtype)


_options = st.one_of(st.just({}), st.fixed_dictionaries({}, optional={
    "sample_rate": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 3000),
                             st.sampled_from(["50", "fast", None])),
    "units": st.sampled_from(["g", "m/s2", "mg"]),
    "gyro_units": st.sampled_from(["rad/s", "deg/s"]),
    "max_windows": st.sampled_from([1, 2, None, 0]),
}))


# ----- properties ------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@PROPERTY
@given(data=st.binary(max_size=3000))
def test_random_bytes(data):
    _outcome(data)


@pytest.mark.timeout(120)
@PROPERTY
@given(case=csv_texts(), options=_options)
def test_csv_like_text_with_mutations(case, options):
    data, must_refuse = case
    out = _outcome(data, **options)
    if must_refuse:
        assert out is None, "a cell in Python-only syntax, non-finite or beyond float32 was accepted"


@pytest.mark.timeout(120)
@PROPERTY
@given(array=arrays(), as_tensor=st.booleans(), options=_options)
def test_arrays_and_tensors_of_random_shapes_and_dtypes(array, as_tensor, options):
    source = torch.from_numpy(array) if as_tensor and array.dtype != np.uint64 else array
    out = _outcome(source, **options)
    if out is not None:
        assert array.ndim == 2 and array.shape[1] in (3, 6) and array.dtype.kind in "iuf"


@pytest.mark.timeout(120)
@PROPERTY
@given(array=arrays(), cut=st.one_of(st.just(0), st.integers(1, 400)),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3))
def test_npy_bytes_truncated_or_corrupted(array, cut, flips):
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = bytearray(buffer.getvalue())
    for position, value in flips:
        data[position % len(data)] = value
    if cut:
        data = data[: len(data) - cut]
    _outcome(bytes(data))


@pytest.mark.timeout(120)
@PROPERTY
@given(value=_rate_values)
def test_random_sample_rate_comments(value):
    body = "0.9,0.1,-0.2,0.01,0.02,-0.03\n" * 150  # 1 s or more up to 150 Hz, under 1 h down to 0.042 Hz
    try:
        signal = IMU.load(f"# sample_rate={value}\n{body}".encode())
    except InvalidSignalError as exc:
        assert any(reason in str(exc) for reason in ("sample rate", "too long", "too short", "line 2")), str(exc)
        event("refused")
        return
    event("accepted")
    # Only a plain decimal in (0, 1000] Hz is accepted, and then it is the rate used - never a silent 50 Hz.
    rate = float(re.sub(r"(?i)\s*hz$", "", value.strip()))
    assert 0 < rate <= sig.MAX_SAMPLE_RATE
    assert signal.shape == (sig.resampled_length(150, rate), sig.CHANNELS)
