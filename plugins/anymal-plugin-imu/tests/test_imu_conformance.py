"""The host's conformance kit over this plugin, called the way any third-party plugin calls it."""

from __future__ import annotations

import numpy as np
import pytest

import anymal_plugin_imu.plugin as imu_plugin
from anymal_host.testing import check_modality, check_plugin
from anymal_plugin_imu import ImuModality, hapt


def test_the_plugin_conforms_without_its_data_set():
    """Modality, encoder, bundled adapters: everything but imu:hapt, which needs the data package."""
    check_plugin(imu_plugin, skip=["imu:hapt"])


def test_the_plugin_conforms_with_its_data_set():
    reason = hapt.data_missing()
    if reason:
        pytest.skip(f"imu:hapt needs its data package: {reason}")
    check_plugin(imu_plugin)


def test_the_modality_refuses_imu_specific_bad_inputs():
    check_modality(ImuModality(), bad_inputs=[
        np.zeros((100, 5), dtype=np.float32),      # 5 channels: neither 3 (accelerometer) nor 6
        np.zeros((10, 6), dtype=np.float32),       # 0.2 s: shorter than the 1 s load accepts
        b"acc_x,acc_y\n1,2\n",                      # CSV with too few columns
    ])
