"""A few training steps against anymal's tiny test LLM, with the real frozen EfficientNet-Lite0 on every frame:
every checkpoint is an adapter package that a running host hot-loads, and that, exported into ``adapters/``,
ships as the plugin's bundled adapter.

Three steps teach the adapter nothing; they prove the whole path (clips -> frames -> encoder -> temporal
resampler -> LLM -> package -> load) works, offline. `anymal train align` on the real LLM is what teaches it.
"""

from __future__ import annotations

import json
import math

import pytest

from anymal_host import AnymalHost
from anymal_host.prompt import Attachment
from anymal_host.testing import registry_with, tiny_llm
from anymal_host.training import TrainConfig, TrainResult, train
from anymal_host.training.checkpoint import export_package

import anymal_plugin_image.plugin as image_plugin
import anymal_plugin_video.plugin as plugin
from anymal_plugin_video import example_path
from anymal_plugin_video.labels import DIRECTION_QUESTION

NUM_TOKENS = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    # "limit" reaches the data set's build through the preprocessing options: 6 clips a split, not 1,000
    config = TrainConfig(dataset="video:motion", output_dir=str(tmp_path_factory.mktemp("run")), steps=3,
                         batch_size=4, eval_every=3, val_items=6, val_generate=2, warmup_steps=1,
                         projector="perceiver", num_tokens=NUM_TOKENS, train_encoder=False,
                         projector_options={"depth": 1, "heads": 2}, preprocessing={"limit": 6, "frames": 4})
    return train(config, AnymalHost(tiny_llm(), registry=registry_with(plugin)), progress=False)


def test_a_few_steps_write_an_adapter_package_that_records_its_encoder(trained: TrainResult) -> None:
    assert [row["step"] for row in trained.history] == [1, 2, 3]
    assert math.isfinite(trained.best_val_loss)
    config = json.loads((trained.best_dir / "anymal_adapter.json").read_text())
    assert config["modality"] == "video" and config["num_tokens"] == NUM_TOKENS
    assert config["projector"]["type"] == "perceiver" and config["projector"]["in_dim"] == 1280 + 32 + 32 + 9
    assert config["encoder"]["name"] == "frames" and config["encoder"]["trainable"] is False
    assert config["encoder"]["config"]["model"] == "efficientnet_lite0"
    # the frame count it was trained with is what it is served with
    assert config["preprocessing"]["frames"] == 4


def test_the_package_carries_only_the_projector(trained: TrainResult) -> None:
    from safetensors.torch import load_file

    saved = load_file(str(trained.best_dir / "adapter.safetensors"))
    assert saved and all(k.startswith("projector.") for k in saved)


def test_a_running_host_hot_loads_the_package_and_answers_about_a_clip(trained: TrainResult) -> None:
    host = AnymalHost(tiny_llm(), registry=registry_with(plugin, image_plugin))
    host.chat("hello", max_new_tokens=2)  # serving before the adapter arrives
    name = host.load_adapter(trained.best_dir)
    assert host.active_adapter_name("video") == name
    answer = host.chat(DIRECTION_QUESTION, attachments=[example_path()], max_new_tokens=4)
    assert isinstance(answer, str)
    # a still PNG sent as video is refused with the fix, and the host answers as before
    from anymal_plugin_image import example_path as image_example

    with pytest.raises(Exception, match="still image: attach it as an image"):
        host.chat(DIRECTION_QUESTION, attachments=[Attachment(source=image_example(), modality="video")],
                  max_new_tokens=2)
    assert host.chat(DIRECTION_QUESTION, attachments=[example_path()], max_new_tokens=4) == answer


def test_an_exported_package_is_bundled_and_loads_on_first_use(trained: TrainResult, tmp_path, monkeypatch) -> None:
    left_out = export_package(trained.best_dir, tmp_path / "adapters" / "video-perceiver")
    assert "trainer_state.json" in left_out
    monkeypatch.setattr(plugin, "ADAPTERS_DIR", tmp_path / "adapters")
    registry = registry_with(plugin)
    assert registry.bundled_adapters == {"video-perceiver": tmp_path / "adapters" / "video-perceiver"}
    host = AnymalHost(tiny_llm(), registry=registry)
    host.chat(DIRECTION_QUESTION, attachments=[example_path()], max_new_tokens=4)  # the bundled one, unasked
    assert host.active_adapter_name("video") == "video-perceiver"
