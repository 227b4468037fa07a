"""A few training steps against anymal's tiny test LLM: every checkpoint is an adapter package that a running
host hot-loads, and that, exported into ``adapters/``, ships as the plugin's bundled adapter.

Three steps teach the adapter nothing; they prove the whole path (data set -> encoder -> projector -> LLM ->
package -> load) works, offline and in seconds. `anymal train align` on the real LLM is what teaches it.
"""

from __future__ import annotations

import json
import math

import pytest

from anymal_host import AnymalHost
from anymal_host.testing import registry_with, tiny_llm
from anymal_host.training import TrainConfig, TrainResult, train
from anymal_host.training.checkpoint import export_package

import anymal_plugin_audio.plugin as plugin
from anymal_plugin_audio import example_path
from anymal_plugin_audio.data import SOUND_QUESTIONS as QUESTIONS
from anymal_plugin_audio.encoder import ENCODER_NAME


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainResult:
    # The perceiver resampler: 1,500 Whisper frames per clip are far too many tokens to give the LLM one each.
    config = TrainConfig(dataset="audio:sounds", output_dir=str(tmp_path_factory.mktemp("run")), steps=3,
                         batch_size=4, eval_every=3, val_items=6, val_generate=4, max_train_items=12,
                         warmup_steps=1, projector="perceiver", num_tokens=32, train_encoder=False)
    return train(config, AnymalHost(tiny_llm(), registry=registry_with(plugin)), progress=False)


def test_a_few_steps_write_an_adapter_package(trained):
    assert [row["step"] for row in trained.history] == [1, 2, 3]
    assert math.isfinite(trained.best_val_loss)
    config = json.loads((trained.best_dir / "anymal_adapter.json").read_text())
    assert config["modality"] == "audio" and config["encoder"]["name"] == ENCODER_NAME
    assert config["projector"]["type"] == "perceiver"
    assert (trained.best_dir / "adapter.safetensors").is_file()


def test_a_running_host_hot_loads_the_package(trained):
    host = AnymalHost(tiny_llm(), registry=registry_with(plugin))  # its own LLM instance, the same weights
    host.chat("what is the person doing", max_new_tokens=2)  # serving before the adapter arrives
    name = host.load_adapter(trained.best_dir)
    assert host.active_adapter_name("audio") == name
    answer = host.chat(QUESTIONS[0], attachments=[example_path()], max_new_tokens=4)
    assert isinstance(answer, str)


def test_an_exported_package_is_bundled_and_loads_on_first_use(trained, tmp_path, monkeypatch):
    left_out = export_package(trained.best_dir, tmp_path / "adapters" / "audio-perceiver")
    assert "trainer_state.json" in left_out
    monkeypatch.setattr(plugin, "ADAPTERS_DIR", tmp_path / "adapters")
    registry = registry_with(plugin)
    assert registry.bundled_adapters == {"audio-perceiver": tmp_path / "adapters" / "audio-perceiver"}
    host = AnymalHost(tiny_llm(), registry=registry)
    host.chat(QUESTIONS[0], attachments=[example_path()], max_new_tokens=4)  # no load_adapter: the bundled one
    assert host.active_adapter_name("audio") == "audio-perceiver"
