"""The IMU signal's shape and rate: constants the modality declares at registration, kept apart from
:mod:`.signals` (numpy and torch) so that registering the plugin imports neither."""

from __future__ import annotations

import math

__all__ = ["SAMPLE_RATE", "CHANNELS", "CHANNEL_NAMES", "WINDOW", "MIN_SECONDS", "MIN_SAMPLES"]

#: Rate (Hz) the encoder runs at: UCI HAPT's rate.
SAMPLE_RATE = 50.0
#: Channels after loading: accelerometer x/y/z then gyroscope x/y/z.
CHANNELS = 6
CHANNEL_NAMES = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
#: One encoder window: 128 samples = 2.56 s at 50 Hz, the UCI HAR window.
WINDOW = 128
#: Shorter recordings carry too little motion to say anything (and are usually a truncated upload).
MIN_SECONDS = 1.0
#: Fewest samples of the canonical 50 Hz signal: MIN_SECONDS at 50 Hz. The encoder itself needs 2 (its
#: stride-2 convolution); the test suite keeps this at least the encoder's ``MIN_LENGTH``.
MIN_SAMPLES = math.ceil(MIN_SECONDS * SAMPLE_RATE)
