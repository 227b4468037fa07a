"""The loader rules every modality follows (anymal_host.sources): paths, sizes, numbers, values."""

from __future__ import annotations

import os
import socket
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anymal_host.errors import InvalidSignalError
from anymal_host.sources import (
    FLOAT32_MAX,
    check_finite_range,
    check_source_path,
    check_source_size,
    format_bytes,
    guess_delimiter,
    open_source_file,
    parse_decimal,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="named pipes and sockets are POSIX")


# ----- paths: look before you open ---------------------------------------------------------------------


def test_a_regular_file_within_the_limit_is_accepted_and_read(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_bytes(b"1,2,3\n")
    assert check_source_path(path, max_bytes=6) == 6  # the limit itself is allowed
    with open_source_file(path, max_bytes=6, what="IMU file") as fh:
        assert fh.read() == b"1,2,3\n"


def test_missing_path_and_a_file_used_as_a_folder(tmp_path):
    with pytest.raises(InvalidSignalError, match=r"IMU file '.*missing.csv' does not exist: check the path"):
        check_source_path(tmp_path / "missing.csv", max_bytes=10, what="IMU file")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidSignalError, match=r"does not exist \(a part of the path is a file"):
        check_source_path(tmp_path / "file" / "x.csv", max_bytes=10)


def test_a_folder_named_like_a_file_is_called_a_folder(tmp_path):
    folder = tmp_path / "x.csv"
    folder.mkdir()
    with pytest.raises(InvalidSignalError, match=r"'.*x.csv' is a folder, not a file: pass the path of a file"):
        open_source_file(folder, max_bytes=10)


@posix_only
@pytest.mark.timeout(20)  # opening a pipe for reading would block until a writer comes: a hang fails here
def test_a_named_pipe_is_refused_without_being_opened(tmp_path):
    pipe = tmp_path / "x.csv"
    os.mkfifo(pipe)
    with pytest.raises(InvalidSignalError, match=r"is a named pipe, not a regular file: save the data to a file"):
        open_source_file(pipe, max_bytes=10)


@posix_only
def test_a_socket_and_a_device_are_called_what_they_are():
    # A short folder: a socket's path must fit in ~100 bytes, which pytest's tmp_path may exceed.
    with tempfile.TemporaryDirectory(prefix="s") as folder:
        path = os.path.join(folder, "x.csv")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(path)
            with pytest.raises(InvalidSignalError, match="is a socket, not a regular file"):
                check_source_path(path, max_bytes=10)
        finally:
            server.close()
    if os.path.exists("/dev/null"):
        with pytest.raises(InvalidSignalError, match="is a device, not a regular file"):
            open_source_file("/dev/null", max_bytes=10)


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.csv"
    with big.open("wb") as fh:
        fh.truncate(3 * 2**30)  # a sparse 3 GiB file: costs no disk, would take long to read
    with pytest.raises(InvalidSignalError, match=r"'.*big.csv' is 3.0 GiB, over the limit of 1.0 MiB: cut it"):
        open_source_file(big, max_bytes=2**20, what="IMU file", fix="cut it into shorter recordings")


def test_sizes_of_bytes_sources_and_their_format():
    check_source_size(100, max_bytes=100, what="the CSV bytes")
    with pytest.raises(InvalidSignalError, match=r"the CSV bytes is 101 bytes, over the limit of 100 bytes: trim"):
        check_source_size(101, max_bytes=100, what="the CSV bytes", fix="trim")
    with pytest.raises(InvalidSignalError, match=r"is 2049 bytes, over the limit of 2048 bytes"):
        check_source_size(2049, max_bytes=2048, what="x")  # both would read "2.0 KiB"
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * 2**20, 3 * 2**30)] == [
        "0 bytes", "1023 bytes", "1.5 KiB", "5.0 MiB", "3.0 GiB"]


# ----- numbers: plain decimals only --------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("1", 1.0), ("-0.25", -0.25), ("+.5", 0.5), ("3.", 3.0), ("1e-3", 1e-3),
                                         ("2E+2", 200.0), (" 7 ", 7.0), ("1e400", float("inf"))])
def test_plain_decimals_are_read(text, value):
    # "1e400" is a plain decimal that overflows: check_finite_range refuses it, with the place named.
    assert parse_decimal(text, what="cell") == value


@pytest.mark.parametrize("text, fix", [
    ("1_0", "remove the '_' digit separators"),
    ("0x10", "not in hexadecimal"),
    ("0b101", "not in hexadecimal, octal or binary"),
    ("nan", "missing or infinite values are refused"),
    ("-Infinity", "missing or infinite values are refused"),
    ("", "the cell is empty"),
    ("0,5", "use a decimal point, not a decimal comma"),
    ("\u0661\u0662", "digits 0-9 (ASCII)"),
    ("1.0g", "remove text, units and spaces"),
    ("1 000", "remove text, units and spaces"),
    ("1e", "remove text, units and spaces"),
])
def test_python_only_and_other_non_decimal_syntax_is_refused_with_its_fix(text, fix):
    with pytest.raises(InvalidSignalError) as info:
        parse_decimal(text, what="data.csv, line 3, column 2")
    assert str(info.value).startswith(f"data.csv, line 3, column 2: {text!r} is not a number: ")
    assert fix in str(info.value)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=12), st.from_regex(r"\A[+-]?[0-9_]{0,4}\.?[0-9_]{0,3}([eE][+-]?[0-9]{0,3})?\Z")))
def test_parse_decimal_accepts_exactly_the_ascii_decimal_grammar(text):
    try:
        value = parse_decimal(text, what="cell")
    except InvalidSignalError as exc:
        assert " is not a number: " in str(exc)
        return
    stripped = text.strip()
    assert stripped.isascii() and "_" not in stripped and stripped.lower() not in ("nan", "inf", "infinity")
    assert value == float(stripped)


def test_guess_delimiter_names_what_a_one_cell_row_uses():
    assert guess_delimiter("1;2;3") == "semicolons (';')"
    assert guess_delimiter("1\t2\t3") == "tabs"
    assert guess_delimiter("1|2|3") == "vertical bars ('|')"
    assert guess_delimiter("1 2 3") == "spaces"
    assert guess_delimiter("acc x", spaces=False) is None
    assert guess_delimiter("1.5") is None


# ----- values: finite, within float32, physical --------------------------------------------------------


def test_finite_values_within_the_range_pass():
    check_finite_range(np.array([[0.0, -2.0], [3.0, 4.0]]), what="signal", low=-4, high=4)
    check_finite_range(np.zeros((0, 6)), what="signal", low=0, high=1)  # nothing to refuse


@pytest.mark.parametrize("bad, message", [
    (np.nan, r"signal contains NaN or infinite values \(first at sample 1, channel 2\): fill or drop"),
    (-np.inf, r"signal contains NaN or infinite values \(first at sample 1, channel 2\)"),
    (1e39, r"signal has the value 1e\+39 at sample 1, channel 2, which overflows float32 .*: check the unit"),
    (-4e38, r"signal has the value -4e\+38 at sample 1, channel 2, which overflows float32"),
])
def test_non_finite_and_float32_overflow_are_refused_where_they_are(bad, message):
    array = np.zeros((3, 4))
    array[1, 2] = bad
    with pytest.raises(InvalidSignalError, match=message):
        check_finite_range(array, what="signal", index_names=("sample", "channel"))


def test_float32_max_itself_passes_and_axes_without_names_are_numbered():
    check_finite_range(np.array([FLOAT32_MAX, -FLOAT32_MAX]), what="signal")
    with pytest.raises(InvalidSignalError, match=r"at axis 0 1, axis 1 0"):
        check_finite_range(np.array([[0.0], [np.nan]]), what="signal")


def test_values_outside_the_physical_range_name_the_unit_and_the_fix():
    with pytest.raises(InvalidSignalError, match=r"acc has the value 500 g at sample 0, outside the physical range "
                                                 r"\[-400, 400\] g: convert milli-g"):
        check_finite_range(np.array([500.0, 1.0]), what="acc", unit="g", low=-400, high=400,
                           index_names=("sample",), fix="convert milli-g")
    with pytest.raises(InvalidSignalError, match=r"the value -1 at axis 0 1, outside the physical range >= 0: check"):
        check_finite_range(np.array([0.0, -1.0]), what="x", low=0)
    with pytest.raises(InvalidSignalError, match=r"outside the physical range <= 1 Pa"):
        check_finite_range(np.array([2.0]), what="x", unit="Pa", high=1)
