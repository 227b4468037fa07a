"""Loading, validation, units, resampling and preprocessing of IMU signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anymal_host.errors import InvalidSignalError
from anymal_plugin_imu import ImuModality, example_path
from anymal_plugin_imu.signals import NORM_MEAN, NORM_STD, resample


@pytest.fixture
def imu() -> ImuModality:
    return ImuModality()


def _walk(seconds: float = 3.0, rate: float = 50.0, channels: int = 6) -> np.ndarray:
    """A walking recording from the shipped HAPT example, resampled to ``rate`` by index lookup."""
    base = np.loadtxt(example_path("walking"), delimiter=",", comments="#", skiprows=3)
    n = int(seconds * rate)
    idx = np.minimum((np.arange(n) * 50.0 / rate).astype(int), len(base) - 1)
    return base[idx, :channels]


def _csv(array: np.ndarray, header: str | None = None, comment: str | None = None) -> str:
    lines = ([comment] if comment else []) + ([header] if header else [])
    lines += [",".join(f"{v:.6f}" for v in row) for row in array]
    return "\n".join(lines) + "\n"


# ----- accepted sources --------------------------------------------------------------------------------


def test_csv_with_and_without_header_give_the_same_signal(imu, tmp_path):
    data = _walk()
    with_header = tmp_path / "with.csv"
    with_header.write_text(_csv(data, header="acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"))
    without = tmp_path / "without.csv"
    without.write_text(_csv(data))
    a, b = imu.load(with_header), imu.load(str(without))
    assert a.shape == (150, 6) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, torch.tensor(data, dtype=torch.float32), atol=1e-6, rtol=0)


def test_header_names_reorder_columns(imu, tmp_path):
    data = _walk()
    shuffled = data[:, [3, 4, 5, 0, 1, 2]]
    path = tmp_path / "gyro_first.csv"
    path.write_text(_csv(shuffled, header="gyro-x,gyro-y,gyro-z,acc-x,acc-y,acc-z"))
    torch.testing.assert_close(imu.load(path), torch.tensor(data, dtype=torch.float32), atol=1e-6, rtol=0)


def test_npy_file_bytes_array_and_tensor(imu, tmp_path):
    data = _walk().astype(np.float32)
    path = tmp_path / "rec.npy"
    np.save(path, data)
    expected = torch.from_numpy(data)
    torch.testing.assert_close(imu.load(path), expected)
    torch.testing.assert_close(imu.load(path.read_bytes()), expected)
    torch.testing.assert_close(imu.load(_csv(data).encode()), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(imu.load(data), expected)
    torch.testing.assert_close(imu.load(torch.from_numpy(data).double()), expected)


def test_accelerometer_only_zero_fills_gyroscope(imu):
    data = _walk(channels=3)
    signal = imu.load(data)
    assert signal.shape == (150, 6)
    torch.testing.assert_close(signal[:, :3], torch.tensor(data, dtype=torch.float32))
    assert torch.count_nonzero(signal[:, 3:]) == 0


def test_units_are_converted(imu):
    data = _walk()
    si = data.copy()
    si[:, :3] *= 9.80665
    si[:, 3:] *= 180.0 / math.pi
    torch.testing.assert_close(imu.load(si, units="m/s2", gyro_units="deg/s"), imu.load(data), atol=1e-5, rtol=0)


def test_example_input_is_valid(imu):
    example = imu.example_input()
    assert isinstance(example, np.ndarray) and example.shape == (128, 6)
    assert imu.preprocess(imu.load(example)).shape == (128, 6)


# ----- sample rate -------------------------------------------------------------------------------------


def test_resampling_to_50_hz_follows_the_signal(imu):
    t = np.arange(400) / 100.0  # 4 s at 100 Hz of a 1.5 Hz motion
    wave = np.sin(2 * math.pi * 1.5 * t)
    data = np.stack([wave] * 6, axis=1)
    out = imu.load(data, sample_rate=100)
    assert out.shape == (200, 6)
    expected = np.sin(2 * math.pi * 1.5 * np.arange(200) / 50.0)
    np.testing.assert_allclose(out[:, 0].numpy(), expected, atol=1e-5)
    up = imu.load(data[::4], sample_rate=25)  # 25 Hz -> 50 Hz: linear interpolation between samples
    assert up.shape == (199, 6)
    np.testing.assert_allclose(up[::2, 0].numpy(), wave[::4][:100], atol=1e-6)


def test_resample_is_identity_at_the_same_rate():
    x = torch.randn(77, 6)
    assert resample(x, 50, 50) is x


def test_csv_comment_declares_the_rate_and_wins_over_the_option(imu, tmp_path):
    data = _walk(seconds=2.0, rate=100.0)
    path = tmp_path / "fast.csv"
    path.write_text(_csv(data, header="acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z", comment="# sample_rate=100"))
    assert imu.load(path).shape == (100, 6)
    assert imu.load(path, sample_rate=50).shape == (100, 6)  # the file describes itself
    assert imu.load(data, sample_rate=100).shape == (100, 6)


# ----- preprocessing -----------------------------------------------------------------------------------


def test_preprocess_normalises_with_fixed_constants(imu):
    signal = imu.load(_walk(seconds=2.0))
    out = imu.preprocess(signal, sample_rate=50, units="g", unknown_adapter_option=True)
    expected = (signal - torch.tensor(NORM_MEAN)) / torch.tensor(NORM_STD)
    torch.testing.assert_close(out, expected)
    assert out.dtype == torch.float32


def test_long_recording_keeps_the_central_windows(imu):
    signal = torch.arange(1000, dtype=torch.float32).unsqueeze(1).repeat(1, 6)
    one = imu.preprocess(signal)
    assert one.shape == (128, 6)
    # the central 128 samples: 436..563
    torch.testing.assert_close(one[:, 0], (torch.arange(436, 564, dtype=torch.float32) - NORM_MEAN[0]) / NORM_STD[0])
    assert imu.preprocess(signal, max_windows=3).shape == (384, 6)
    assert imu.preprocess(signal, max_windows=None).shape == (1000, 6)
    short = imu.preprocess(signal[:60])
    assert short.shape == (60, 6)


def test_windows_fifty_percent_overlap(imu):
    signal = torch.arange(300, dtype=torch.float32).unsqueeze(1).repeat(1, 6)
    w = imu.windows(signal)
    assert w.shape == (3, 128, 6)  # starts 0, 64, 128; 192 would run past the end
    assert w[1, 0, 0] == 64 and w[2, -1, 5] == 255
    assert imu.windows(signal[:100]).shape == (0, 128, 6)
    assert imu.windows(signal, size=100, step=100).shape == (3, 100, 6)


def test_load_and_preprocess_accept_a_one_hour_recording(imu):
    signal = imu.load(np.zeros((3600 * 50, 6), dtype=np.float32))
    assert signal.shape == (180000, 6)
    assert imu.preprocess(signal).shape == (128, 6)


# ----- malformed input: every one is an InvalidSignalError that says what and how -----------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.full((100, 6), np.nan), "NaN or infinite values"),
        (lambda p: np.concatenate([np.zeros((99, 6)), np.full((1, 6), np.inf)]), "NaN or infinite values"),
        (lambda p: np.zeros((100, 5)), "has 5 channels"),
        (lambda p: np.zeros((6, 300)), "looks transposed"),
        (lambda p: np.zeros((40, 6)), "too short"),
        (lambda p: np.zeros((3600 * 50 + 1, 3), dtype=np.float32), "too long"),
        (lambda p: np.zeros((2, 100, 6)), "3 dimension(s)"),
        (lambda p: np.zeros(600), "1 dimension(s)"),
        (lambda p: np.array([["a"] * 6] * 100), "not real numbers"),
        (lambda p: np.zeros((100, 6), dtype=bool), "not real numbers"),
        (lambda p: p / "missing.csv", "does not exist"),
        (lambda p: p / "rec.wav", "unsupported IMU file extension '.wav'"),
        (lambda p: p / "noext", "unsupported IMU file extension '(none)'"),
        (lambda p: b"", "empty"),
        (lambda p: b"acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n# only a header\n", "empty"),
        (lambda p: b"1,2,3,4,5,6\n1,2,x,4,5,6\n", "line 2, column 3: 'x' is not a number"),
        (lambda p: b"1,2,3,4,5,6\n1,2,,4,5,6\n", "line 2, column 3: '' is not a number"),
        (lambda p: b"1,2,3,4,5,6\n1,2,3\n", "line 2: 3 cells where earlier rows have 6"),
        (lambda p: b"\xff\xfe\x00garbage", "neither UTF-8 CSV text nor a .npy"),
        (lambda p: {"acc": [1, 2, 3]}, "cannot read an IMU signal from dict"),
    ],
)
def test_malformed_input_is_refused_with_a_clear_message(imu, tmp_path, make, message):
    source = make(tmp_path)
    if isinstance(source, type(tmp_path)) and source.suffix in (".wav", ""):
        source.write_bytes(b"RIFF")
    with pytest.raises(InvalidSignalError) as info:
        imu.load(source)
    assert message in str(info.value)
    assert ":" in str(info.value)  # what is wrong, then how to fix it


def test_empty_and_non_numeric_csv_files(imu, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidSignalError, match="is empty .* one row per sample"):
        imu.load(empty)
    bad = tmp_path / "bad.csv"
    bad.write_text("acc_x,acc_y,acc_z\n0.1,0.2,0.3\n0.1,0.2,1.0g\n")
    with pytest.raises(InvalidSignalError, match=r"line 3, column 3: '1.0g' is not a number.*remove text, units"):
        imu.load(bad)


def test_object_npy_is_refused_without_unpickling(imu, tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(InvalidSignalError, match="object array .* refused"):
        imu.load(path)
    truncated = tmp_path / "cut.npy"
    np.save(truncated, np.zeros((100, 6)))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(InvalidSignalError, match="not a readable .npy"):
        imu.load(truncated)


def test_unknown_units_and_bad_rates(imu):
    data = _walk()
    with pytest.raises(InvalidSignalError, match=r"unknown accelerometer unit units='mg': use one of 'g', 'm/s2'"):
        imu.load(data, units="mg")
    with pytest.raises(InvalidSignalError, match=r"unknown gyroscope unit gyro_units='rpm'"):
        imu.load(data, gyro_units="rpm")
    with pytest.raises(InvalidSignalError, match="not plausible"):
        imu.load(data, sample_rate=0)
    with pytest.raises(InvalidSignalError, match="not a number"):
        imu.load(data, sample_rate="fast")
    with pytest.raises(InvalidSignalError, match="not plausible"):
        imu.load(b"# sample_rate=-5\n" + _csv(data).encode())


def test_too_short_counts_seconds_at_the_given_rate(imu):
    with pytest.raises(InvalidSignalError, match=r"80 samples at 100 Hz = 0.80 s, 40 at 50 Hz; send at least 1 s \(100 "
                                                 r"samples at 100 Hz"):
        imu.load(np.zeros((80, 6)), sample_rate=100)


def test_preprocess_refuses_what_load_did_not_make(imu):
    with pytest.raises(InvalidSignalError, match="call load"):
        imu.preprocess(np.zeros((128, 6)))
    with pytest.raises(InvalidSignalError, match="call load"):
        imu.preprocess(torch.zeros(128, 3))
    for bad in (0, -1, 2.5, "2", True, 10**9):  # an adapter's preprocessing of the wrong type or range
        with pytest.raises(InvalidSignalError, match="whole number of windows from 1 to 10000"):
            imu.preprocess(torch.zeros(128, 6), max_windows=bad)
