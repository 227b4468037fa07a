"""The IMU loader's limits (issue 7, class 8): size, values, length, CSV syntax, rate comments, path kinds.

Every refusal is an InvalidSignalError that says what is wrong and how to fix it.
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest
import torch

from anymal_host.errors import InvalidSignalError
from anymal_plugin_imu import ImuModality
from anymal_plugin_imu import signals as sig
from anymal_plugin_imu.encoder import ImuConvTransformer, build_encoder

ROW = "0.9,0.1,-0.2,0.01,0.02,-0.03\n"


@pytest.fixture
def imu() -> ImuModality:
    return ImuModality()


def _refused(imu: ImuModality, source, match: str, **options) -> str:
    with pytest.raises(InvalidSignalError, match=match) as info:
        imu.load(source, **options)
    return str(info.value)


# ----- size: refused before the whole file is read ------------------------------------------------------


def test_a_ten_million_row_csv_is_refused_after_an_hour_of_rows(imu, tmp_path):
    path = tmp_path / "huge.csv"
    chunk = b"0,0,1\n" * 1_000_000
    with path.open("wb") as fh:
        for _ in range(10):
            fh.write(chunk)
        # Bytes that are not UTF-8 at the very end: a loader that read or decoded the whole file before
        # counting rows would report them instead of the row limit.
        fh.write(b"\xff\xfe\xfd\n")
    try:
        _refused(imu, path, r"IMU recording is too long: '.*huge.csv' holds more than 180000 samples \(reading "
                            r"stopped at line 180001\), over 3600 s at 50 Hz: cut it")
    finally:
        path.unlink()  # 60 MB: do not leave it in pytest's kept temporary folders


def test_the_row_limit_follows_the_declared_rate(imu):
    at_1_hz = "# sample_rate=1\n" + ROW * 3600
    assert imu.load(at_1_hz.encode()).shape == (179951, 6)  # exactly one hour: accepted
    _refused(imu, (at_1_hz + ROW).encode(), r"more than 3600 samples \(reading stopped at line 3602\), over 3600 s "
                                           r"at 1 Hz")
    # Without a comment the sample_rate option bounds the rows in the same way.
    _refused(imu, (ROW * 3601).encode(), r"more than 3600 samples .* at 1 Hz", sample_rate=1)


def test_files_over_the_byte_limit_are_refused_before_they_are_read(imu, tmp_path):
    for name, limit in (("big.csv", sig.MAX_CSV_BYTES), ("big.npy", sig.MAX_NPY_BYTES)):
        path = tmp_path / name
        with path.open("wb") as fh:
            fh.truncate(2 * limit)  # sparse: no disk used; reading it would return only NUL bytes
        message = _refused(imu, path, r"IMU file '.*big\.(csv|npy)' is [0-9.]+ MiB, over the limit of [0-9.]+ MiB: the "
                                      r"longest accepted recording is 3600 s at up to 1000 Hz; cut it")
        assert name in message


def test_bytes_over_the_limit_are_refused_by_their_length(imu, monkeypatch):
    monkeypatch.setattr(sig, "MAX_CSV_BYTES", 2000)  # the real limit is hundreds of MB
    assert imu.load((ROW * 60).encode()).shape == (60, 6)  # 1740 bytes
    _refused(imu, (ROW * 70).encode(), r"the CSV bytes is 2030 bytes, over the limit of 2000 bytes: the longest")
    monkeypatch.setattr(sig, "MAX_NPY_BYTES", 1000)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((100, 6)))
    _refused(imu, buffer.getvalue(), r"the .npy bytes is 4.8 KiB, over the limit of 1000 bytes")


def test_an_npy_header_declaring_a_huge_array_is_refused_before_its_data_is_read(imu):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12, 6)})
    _refused(imu, buffer.getvalue() + b"\0" * 48, r"is too long: shape \(1000000000000, 6\) holds more than "
                                                 r"3600000 samples")


def test_arrays_and_tensors_over_the_sample_limit_are_refused_before_any_copy(imu):
    huge = np.broadcast_to(np.zeros(6, dtype=np.float32), (sig.MAX_SAMPLES + 1, 6))  # a view: no memory
    _refused(imu, huge, r"IMU array is too long: shape \(3600001, 6\)")
    _refused(imu, torch.zeros(6).expand(sig.MAX_SAMPLES + 1, 6), r"IMU tensor is too long")
    _refused(imu, np.broadcast_to(np.zeros(1), (6, sig.MAX_SAMPLES + 1)),
             r"IMU array is too long: shape \(6, 3600001\)")


def test_sample_rates_above_the_maximum_are_refused(imu):
    _refused(imu, np.zeros((2000, 6)), r"sample rate 1001 Hz is not plausible: .*at most 1000; downsample",
             sample_rate=1001)
    assert imu.load(np.zeros((1000, 6)), sample_rate=1000).shape == (50, 6)


# ----- values: finite, within float32, physical for the unit --------------------------------------------


def test_a_value_that_overflows_float32_is_refused(imu):
    # 1e39 became inf in float32 and an empty answer from the LLM.
    message = _refused(imu, (ROW * 60 + "1e39,0,0,0,0,0\n").encode(), r"IMU signal has the value 1e\+39 at sample "
                                                                      r"60, channel 0, which overflows float32")
    assert ": " in message
    _refused(imu, (ROW * 60 + "1e400,0,0,0,0,0\n").encode(), r"NaN or infinite values \(first at sample 60")


def test_accelerometer_values_absurd_for_g_are_refused(imu):
    data = np.zeros((100, 6))
    data[:, 2] = 1.0
    data[7, 1] = sig.MAX_ACC_G
    assert imu.load(data).shape == (100, 6)  # the bound itself is a reading some sensor can make
    data[7, 1] = 1000.0  # milli-g mistaken for g
    _refused(imu, data, r"IMU accelerometer has the value 1000 g at sample 7, channel 1, outside the physical range "
                        r"\[-400, 400\] g: .*milli-g or raw sensor counts: convert them to g")
    # The bound applies in g after the unit conversion: 1000 m/s^2 = 102 g is a real (if violent) reading.
    assert imu.load(data, units="m/s2").shape == (100, 6)


def test_gyroscope_values_absurd_for_rad_s_are_refused(imu):
    data = np.zeros((100, 6))
    data[3, 5] = -120.0  # deg/s mistaken for rad/s
    _refused(imu, data, r"IMU gyroscope has the value -120 rad/s at sample 3, gyro channel 2, outside the physical "
                        r"range \[-69.8132, 69.8132\] rad/s: .*pass gyro_units='deg/s'")
    assert imu.load(data, gyro_units="deg/s").shape == (100, 6)


# ----- too short for the encoder --------------------------------------------------------------------------


def test_one_sample_at_one_hz_is_refused_before_the_encoder(imu):
    # 1 sample at 1 Hz used to pass the 1 s check and crash inside the encoder's stride-2 convolution.
    message = _refused(imu, b"# sample_rate=1\n" + ROW.encode(),
                       r"IMU recording is too short: 1 sample at 1 Hz = 1.00 s, 1 at 50 Hz; send at least 1 s "
                       r"\(2 samples at 1 Hz, which give the encoder the 50 samples at 50 Hz it needs\)")
    assert "ideally 2.56 s" in message
    _refused(imu, np.zeros((1, 6)), "1 sample at 1 Hz", sample_rate=1)
    assert imu.load(np.zeros((2, 6)), sample_rate=1).shape == (51, 6)


@pytest.mark.parametrize("rate", [0.5, 1, 3, 25, 49.9, 50, 100, 333.3, 1000])
def test_the_minimum_is_exact_at_every_rate(imu, rate):
    n = sig.min_source_samples(rate)
    assert imu.load(np.zeros((n, 6)), sample_rate=rate).shape[0] >= sig.MIN_SAMPLES
    _refused(imu, np.zeros((n - 1, 6)), f"too short: {n - 1} sample", sample_rate=rate)


def test_the_shortest_accepted_recording_runs_through_the_encoder(imu):
    assert sig.MIN_SAMPLES >= ImuConvTransformer.MIN_LENGTH
    signal = imu.preprocess(imu.load(np.zeros((sig.MIN_SAMPLES, 6))))
    encoder = build_encoder({"width": 8, "depth": 1, "heads": 2}).eval()
    features, mask = encoder(signal.unsqueeze(0))
    assert features.shape == (1, sig.MIN_SAMPLES // 2, 8) and bool(mask.all())
    with pytest.raises(ValueError, match="IMU encoder needs at least 2 samples per item, got signals"):
        encoder(torch.zeros(1, 1, 6))


def test_preprocess_refuses_a_tensor_shorter_than_load_accepts(imu):
    with pytest.raises(InvalidSignalError, match=r"got a signal of 1 sample\(s\), fewer than the 50 .*call load"):
        imu.preprocess(torch.zeros(1, 6))


# ----- CSV syntax: the csv module, plain decimals, delimiters --------------------------------------------


def test_quoted_numbers_are_read(imu):
    quoted = '"acc_x","acc_y","acc_z"\n' + '"0.5", " -0.25",1e-1\n' * 60
    signal = imu.load(quoted.encode())
    torch.testing.assert_close(signal[0, :3], torch.tensor([0.5, -0.25, 0.1]))


@pytest.mark.parametrize("text, delimiter", [
    ("0.9;0.1;-0.2\n", "semicolons"),
    ("0.9\t0.1\t-0.2\n", "tabs"),
    ("0.9|0.1|-0.2\n", "vertical bars"),
    ("0.9 0.1 -0.2\n", "spaces"),
])
def test_a_row_read_as_one_cell_names_the_delimiter(imu, text, delimiter):
    _refused(imu, (text * 60).encode(), rf"line 1: the row is a single cell '0.9.*': the file seems to separate "
                                        rf"columns with {delimiter}.*; save it with commas between columns")


def test_a_one_cell_header_names_the_delimiter_and_a_single_column_is_refused(imu):
    _refused(imu, ("acc_x;acc_y;acc_z\n" + "1;2;3\n" * 60).encode(), r"line 1: the row is a single cell 'acc_x;acc_y"
                                                                     r";acc_z': .*separate columns with semicolons")
    _refused(imu, ("0.5\n" * 60).encode(), r"line 1: the row is a single cell '0.5': a row needs 3 or 6 columns")


def test_semicolons_with_decimal_commas_are_recognised(imu):
    _refused(imu, ("0,9;0,1;-0,2\n" * 60).encode(), r"line 1: the cell '9;0' holds semicolons .* decimal commas "
                                                    r"\(0,5\); save it with commas between columns and decimal points")


def test_a_later_row_that_is_one_cell_gets_the_delimiter_hint(imu):
    _refused(imu, (ROW * 3 + "0.9;0.1;-0.2;0;0;0\n").encode(),
             r"line 4: 1 cells where earlier rows have 6: every row needs the same columns \(the row is a single "
             r"cell .* semicolons")


@pytest.mark.parametrize("cell, fix", [
    ("1_0", "remove the '_' digit separators"),
    ("0x10", "not in hexadecimal"),
    ("nan", "missing or infinite values are refused"),
    ("NaN", "missing or infinite values are refused"),
    ("inf", "missing or infinite values are refused"),
    ("-Infinity", "missing or infinite values are refused"),
    ("\u0661", "digits 0-9 (ASCII)"),
    ('"0,5"', "use a decimal point, not a decimal comma"),
])
def test_python_only_number_syntax_is_refused(imu, cell, fix):
    text = ROW * 2 + f"0.1,{cell},0,0,0,0\n" + ROW * 60
    shown = cell.strip('"')
    message = _refused(imu, text.encode(), rf"line 3, column 2: {shown!r} is not a number: ".replace("\\\\", "\\"))
    assert fix in message


def test_an_unclosed_quote_is_named(imu):
    _refused(imu, ('0.1,"0.2,0,0,0,0\n' + ROW * 60).encode(), r"a quote \(\"\) is never closed.*remove the stray quote")


def test_an_overlong_line_is_refused_without_keeping_it(imu):
    _refused(imu, ("1," * 10_000 + "1\n").encode(), r"line 1 is longer than 4096 characters: a CSV row holds one")


def test_text_that_is_not_utf8_is_refused(imu, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(("acc_x,acc_y,acc_z  # \u00e9\n" + ROW * 60).encode("latin-1"))
    _refused(imu, path, r"neither UTF-8 CSV text nor a .npy file \(it holds bytes that are not UTF-8\): save "
                        r"the recording as UTF-8 CSV")


# ----- the sample rate comment ----------------------------------------------------------------------------


@pytest.mark.parametrize("comment", ["# sample_rate=abc", "# sample_rate=", "# Sample rate: fast",
                                     "# sample_rate=1_00", "# sampling rate = 100 per second"])
def test_an_unreadable_rate_comment_is_an_error_naming_the_line(imu, comment):
    text = "# a recording\n" + comment + "\n" + ROW * 200
    _refused(imu, text.encode(), rf"the CSV bytes, line 2: '{comment}' does not give a sample rate that can be "
                                 r"read: write it as '# sample_rate=50' \(in Hz\)")


@pytest.mark.parametrize("comment", ["# sample_rate=100", "#sample_rate: 100 Hz", "# Sampling rate = 100hz",
                                     "# SAMPLE-RATE=1e2"])
def test_readable_rate_comments(imu, comment):
    assert imu.load((comment + "\n" + ROW * 200).encode()).shape == (100, 6)


def test_rate_comments_after_the_data_or_contradicting_each_other_are_refused(imu):
    _refused(imu, (ROW * 100 + "# sample_rate=100\n").encode(), r"line 101: the sample rate comment comes after data "
                                                                r"rows: move it to the top of the file")
    _refused(imu, ("# sample_rate=100\n# sample_rate=50\n" + ROW * 100).encode(),
             r"line 2: a second sample rate \(50 Hz\) contradicts the first \(100 Hz\)")
    assert imu.load(("# sample_rate=100\n# sample_rate=100.0\n" + ROW * 100).encode()).shape == (50, 6)
    assert imu.load(("# recorded at home, 50 Hz\n" + ROW * 100).encode()).shape == (100, 6)  # other comments


# ----- paths: called what they are ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x.csv", "x.npy"])
def test_a_folder_named_like_a_recording(imu, tmp_path, name):
    (tmp_path / name).mkdir()
    _refused(imu, tmp_path / name, rf"IMU file '.*{name}' is a folder, not a file: pass the path of a file inside it")


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes are POSIX")
@pytest.mark.timeout(20)  # opening the pipe would block until a writer comes: a hang fails the test
def test_a_named_pipe_named_like_a_recording(imu, tmp_path):
    os.mkfifo(tmp_path / "x.csv")
    _refused(imu, tmp_path / "x.csv", r"IMU file '.*x.csv' is a named pipe, not a regular file: save the data to a "
                                      r"file first")
