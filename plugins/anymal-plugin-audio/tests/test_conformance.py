"""anymal's conformance kit over everything the plugin registers, plus the plugin's own bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymal_host import InvalidSignalError
from anymal_host.testing import check_modality, check_plugin, registry_with

import anymal_plugin_audio.plugin as plugin
from anymal_plugin_audio import AudioModality


def test_passes_the_conformance_kit(espeak):
    # Modality, encoder (the real Whisper weights), both data sets and any bundled adapter.
    check_plugin(plugin)


def test_passes_the_modality_checks_with_its_own_bad_inputs():
    check_modality(AudioModality(), bad_inputs=[
        b"RIFF\x00\x00\x00\x00WAVEjunk", (np.zeros(1600, dtype=np.float32), 10**9),
        (np.zeros((1600, 0), dtype=np.float32), 16_000), np.zeros(1600, dtype=np.float32),
        {"data": "%%%", "format": "wav"},
    ])


def test_registers_the_modality_and_the_data_sets():
    registry = registry_with(plugin)
    modality = registry.modality("audio")
    assert registry.modality_for("clip.mp3") is modality and registry.modality_for("clip.FLAC") is modality
    assert registry.modality_for(media_type="audio/wav") is modality
    assert {"audio:speech", "audio:sounds", "audio:digits", "audio:mix"} <= set(registry.datasets)
    assert registry.dataset("audio:mix").parse_label("I hear two beeps.") == "two beeps"
    assert registry.dataset("audio:digits").labels == ("zero", "one", "two", "three", "four", "five", "six", "seven",
                                                       "eight", "nine")
    assert not [error for info in registry.plugins.values() for error in info.errors]


def test_preprocess_refuses_what_load_never_returns():
    with pytest.raises(InvalidSignalError, match=r"\[N, 1\]"):
        AudioModality().preprocess(torch.zeros(1600, 2))
    with pytest.raises(InvalidSignalError, match="NaN"):
        AudioModality().preprocess(torch.full((1600, 1), float("nan")))
    with pytest.raises(InvalidSignalError, match="outside the 320-480000"):
        AudioModality().preprocess(torch.zeros(100, 1))
