"""``ImuModality``: wearable accelerometer + gyroscope recordings (UCI HAPT layout)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from anymal_host.errors import InvalidSignalError
from anymal_host.modality import Modality, SignalSpec

from . import spec

if TYPE_CHECKING:  # numpy, torch and the parsers load on first use, so registering the plugin imports none
    import numpy as np
    import torch

    from anymal_host.modality import Encoder

__all__ = ["ImuModality", "EXAMPLES_DIR", "example_path"]

#: CSV recordings shipped with the plugin: one per activity, from HAPT test users.
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def example_path(activity: str = "walking") -> Path:
    """The shipped example CSV of ``activity`` (``walking``, ``walking upstairs``, ... ``lying``)."""
    path = EXAMPLES_DIR / f"{activity.replace(' ', '_')}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EXAMPLES_DIR.glob("*.csv")))
        raise FileNotFoundError(f"no shipped IMU example {activity!r}: the examples are {known}")
    return path


class ImuModality(Modality):
    """A 6-axis IMU: accelerometer x/y/z (g) + gyroscope x/y/z (rad/s) at 50 Hz.

    ``load`` reads a path (``.csv`` with or without a header row, ``.npy``), bytes (CSV text or ``.npy``
    bytes), a numpy array or a torch tensor of shape ``[T, 6]`` or ``[T, 3]`` (accelerometer only: the
    gyroscope channels are zero-filled), validates it, converts units and resamples to 50 Hz. It returns the
    canonical ``[T, 6]`` float32 signal. ``preprocess`` keeps the central ``max_windows`` windows of 2.56 s
    (128 samples; one by default, the length the adapters are trained on) and normalises each channel with
    fixed constants measured on the HAPT training users.
    """

    name = "imu"
    examples_dir = EXAMPLES_DIR  # listed by `anymal modalities --examples`
    file_extensions = (".csv", ".npy")
    media_types = ("text/csv", "application/x-npy")
    signal_spec = SignalSpec(
        sample_rate=spec.SAMPLE_RATE,
        channels=spec.CHANNELS,
        description=("acc_x, acc_y, acc_z in g, gyro_x, gyro_y, gyro_z in rad/s (UCI HAPT, waist-worn phone); "
                     "resampled to 50 Hz; the central 2.56 s (128 samples) by default; normalised per channel"),
    )
    description = "6-axis wearable IMU (accelerometer + gyroscope) from CSV or .npy, 50 Hz"

    def load(self, source: Any, sample_rate: float | None = None, units: str = "g", gyro_units: str = "rad/s",
             **options: Any) -> torch.Tensor:
        """Parse and validate ``source``; return ``[T, 6]`` float32 at 50 Hz in g and rad/s.

        :param sample_rate: rate of the source in Hz, for sources that do not declare one; a CSV's own
            ``# sample_rate=...`` comment line takes precedence because it describes that very file.
            Default 50 Hz.
        :param units: accelerometer units, ``"g"`` (default) or ``"m/s2"``.
        :param gyro_units: gyroscope units, ``"rad/s"`` (default) or ``"deg/s"``.
        :param options: other preprocessing options (the adapter's dict); ignored here.
        :raises InvalidSignalError: for anything malformed, saying what and how to fix it. Paths are checked
            before they are opened and sizes before anything is read; see the limits in :mod:`.signals` and
            the plugin's README.
        """
        from . import signals as sig

        array, declared_rate = sig.parse_source(source, sample_rate=sample_rate)
        rate = declared_rate if declared_rate is not None else sample_rate
        return sig.to_canonical(array, sample_rate=rate, units=units, gyro_units=gyro_units)

    def preprocess(self, signal: torch.Tensor, max_windows: int | None = 1, **options: Any) -> torch.Tensor:
        """Canonical signal -> encoder input ``[T, 6]`` float32 with ``T <= 128 * max_windows``.

        :param max_windows: how many 2.56 s windows of a long recording to keep, from its middle; ``None``
            keeps it all (the encoder accepts any length, but adapters are trained on one window).
        :param options: other options (``sample_rate``, ``units``...) are consumed by ``load``; ignored here.
        """
        import torch

        from . import signals as sig

        if not isinstance(signal, torch.Tensor) or signal.dim() != 2 or signal.shape[1] != sig.CHANNELS:
            shape = tuple(signal.shape) if hasattr(signal, "shape") else type(signal).__name__
            raise InvalidSignalError(f"imu preprocess expects the [T, 6] tensor that ImuModality.load returns, got "
                                     f"{shape}: call load(source) first")
        if signal.shape[0] < sig.MIN_SAMPLES:
            # load never returns fewer; a shorter tensor would reach the encoder's convolution and fail there.
            raise InvalidSignalError(f"imu preprocess got a signal of {signal.shape[0]} sample(s), fewer than the "
                                     f"{sig.MIN_SAMPLES} ({sig.MIN_SECONDS:g} s at 50 Hz) that load accepts: call "
                                     "load(source) first")
        if max_windows is not None:
            if isinstance(max_windows, bool) or not isinstance(max_windows, int) or not 1 <= max_windows <= 10_000:
                raise InvalidSignalError(f"max_windows={max_windows!r}: give a whole number of windows from 1 to "
                                         f"10000, or None for all")
            signal = sig.crop_center(signal, max_windows * sig.WINDOW)
        return sig.normalise(signal.to(torch.float32))

    def windows(self, signal: torch.Tensor, size: int = spec.WINDOW, step: int = spec.WINDOW // 2) -> torch.Tensor:
        """Sliding windows ``[N, size, 6]`` (50% overlap by default) of a loaded or preprocessed signal, for
        classifying a long recording window by window."""
        from . import signals as sig

        return sig.windows(signal, size=size, step=step)

    default_encoder = {"name": "imu-conv-transformer"}

    def build_encoder(self, config: Mapping[str, Any]) -> Encoder:
        from .encoder import build_encoder  # torch.nn model code loads on first use, not at registration

        return build_encoder(config)

    def example_input(self) -> np.ndarray:
        """The first 2.56 s of the shipped walking example (real HAPT data), ``[128, 6]`` float32."""
        import numpy as np

        from . import signals as sig

        array, _ = sig.parse_source(example_path("walking"))
        return array[: sig.WINDOW].astype(np.float32)
