"""The plugin registers what it should, reads what it should, refuses what it should with the fix, and passes
anymal's conformance kit (the checks every host runs on a plugin's modality, encoder and data sets)."""

from __future__ import annotations

import importlib.metadata
from collections import Counter

import numpy as np
import pytest
import torch

from anymal_host import InvalidSignalError
from anymal_host.testing import check_dataset, check_encoder, check_modality, check_plugin, registry_with

import anymal_plugin_audio.plugin as plugin
from anymal_plugin_audio import AudioModality, example_path
from anymal_plugin_audio.data import LABELS, build_demo, label_from_text
from anymal_plugin_audio.encoder import ENCODER_NAME, STRIDE, build_encoder
from anymal_plugin_audio.modality import CENTER, MIN_READINGS, SCALE, WINDOW


def test_registers_the_modality_and_the_data_set():
    registry = registry_with(plugin)
    modality = registry.modality("audio")
    assert isinstance(modality, AudioModality)
    assert registry.modality_for("recording.audio") is modality
    assert registry.modality_for(media_type="text/x-audio") is modality
    spec = registry.dataset("audio:demo")
    assert spec.modality == "audio" and spec.labels == LABELS and spec.parse_label is label_from_text
    assert not [error for info in registry.plugins.values() for error in info.errors]


def test_passes_the_conformance_kit():
    check_plugin(plugin)


def test_a_recording_reads_the_same_from_a_file_bytes_and_arrays(tmp_path):
    readings = np.linspace(1.0, 40.0, 40)
    path = tmp_path / "up.audio"
    path.write_text("# a comment, then a blank line\n\n" + "\n".join(f"{x:g}" for x in readings) + "\n")
    modality = AudioModality()
    signal = modality.load(path)
    assert signal.shape == (40, 1) and signal.dtype == torch.float32
    assert torch.equal(signal, modality.load(path.read_bytes()))
    assert torch.equal(signal, modality.load(readings))
    assert torch.equal(signal, modality.load(torch.tensor(readings).reshape(-1, 1)))
    assert torch.equal(signal, modality.load(str(path)))


def test_preprocess_keeps_the_last_window_and_collate_pads():
    modality = AudioModality()
    signal = modality.load(np.arange(40.0))
    window = modality.preprocess(signal)
    assert window.shape == (WINDOW, 1)
    assert torch.allclose(window * SCALE + CENTER, signal[-WINDOW:])
    batch, mask = modality.collate([window, modality.preprocess(signal[:MIN_READINGS])])
    assert batch.shape == (2, WINDOW, 1) and mask.sum(1).tolist() == [WINDOW, MIN_READINGS]


def test_the_shipped_example_is_the_example_input():
    modality = AudioModality()
    assert modality.example_input() == example_path("rising")
    readings = modality.load(modality.example_input())[:, 0]
    assert len(readings) >= WINDOW and readings[-1] > readings[0]  # it is the rising example
    with pytest.raises(FileNotFoundError, match="the examples are rising"):
        example_path("sideways")


@pytest.mark.parametrize(("source", "message"), [
    (b"1\n2\n3\n", "fewer than the 8"),
    (b"1\n2\nhello\n", "line 3: 'hello' is not a number"),
    (b"1;2\n" * 8, "line 1: '1;2' holds 2 values"),
    (b"0,5\n" * 8, "decimal point"),
    (b"\xff\xfe1\n", "not UTF-8"),
    (np.full(16, np.nan), "NaN"),
    (np.full(16, 1e9), "outside the physical range"),
    (np.zeros((16, 2)), r"shape \[T\] or \[T, 1\]"),
    (np.array(["1"] * 16), "holds numbers"),
])
def test_bad_input_is_refused_with_the_fix(source, message):
    with pytest.raises(InvalidSignalError, match=message):
        AudioModality().load(source)


def test_bad_paths_are_refused_by_what_they_are(tmp_path):
    modality = AudioModality()
    with pytest.raises(InvalidSignalError, match="does not exist"):
        modality.load(tmp_path / "missing.audio")
    with pytest.raises(InvalidSignalError, match="is a folder"):
        modality.load(tmp_path)


def test_the_conformance_kit_sees_the_refusals(tmp_path):
    check_modality(AudioModality(), bad_inputs=[tmp_path / "missing.audio", b"1\n2\n", np.full(16, np.inf)])


def test_encoder_gives_one_feature_step_per_stride():
    modality = AudioModality()
    check_encoder(modality)
    encoder = modality.build_encoder({"name": ENCODER_NAME, "width": 16})
    assert encoder.feature_dim == 16 and encoder.pretrained_weights is False
    long, short = modality.preprocess(modality.load(np.arange(40.0))), modality.preprocess(modality.load(np.ones(8)))
    features, mask = encoder(*modality.collate([long, short]))
    assert features.shape == (2, WINDOW // STRIDE, 16)
    assert mask.sum(1).tolist() == [WINDOW // STRIDE, MIN_READINGS // STRIDE]


@pytest.mark.parametrize(("config", "message"), [
    ({"name": "other-encoder"}, "unknown audio encoder 'other-encoder'"),
    ({"name": ENCODER_NAME, "width": 0}, "width=0"),
    ({"name": ENCODER_NAME, "width": True}, "width=True"),
    ({"name": ENCODER_NAME, "depth": 2}, "no option"),
])
def test_encoder_config_is_checked(config, message):
    with pytest.raises(ValueError, match=message):
        build_encoder(config)


def test_demo_data_set_is_balanced_and_its_captions_name_their_label():
    check_dataset(registry_with(plugin).dataset("audio:demo"))
    items = build_demo("train")
    assert Counter(item["label"] for item in items) == {label: len(items) // len(LABELS) for label in LABELS}
    assert all(label_from_text(item["caption"]) == item["label"] for item in items)
    # each split is its own draw: no recording is in two splits
    assert not any(torch.equal(a["signal"], b["signal"]) for a in items for b in build_demo("test"))
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        build_demo("dev")


def test_label_from_text_reads_whole_words_only():
    assert label_from_text("The readings are Rising.") == "rising"
    assert label_from_text("It is flat, not falling.") == "flat"
    assert label_from_text("An inflatable boat.") is None
    assert label_from_text("I cannot tell.") is None


def test_entry_point_is_installed():
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="anymal")}
    if "audio" not in entry_points:
        pytest.skip("anymal-plugin-audio is not installed: run `pip install -e .` in its folder")
    assert entry_points["audio"] == "anymal_plugin_audio.plugin"
