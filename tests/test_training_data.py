"""What a training run builds from its config: the encoder config (merged into the modality's default), the data
(built with the adapter's preprocessing options), and the ``anymal datasets`` listing of what can be built."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adapters_hub import read_package_config
from anymal_host import AnymalHost, DatasetSpec, Registry, hookimpl
from anymal_host.training import TrainConfig, train

from . import toy_plugin


class DialModality(toy_plugin.ToyModality):
    """The toy modality under another name, with a default encoder (the toy modality declares none)."""

    name = "dial"
    file_extensions = (".dial",)
    media_types = ()
    default_encoder = {"name": "toy", "width": 4}


class DialPlugin:
    """A plugin whose data set records every ``build`` call's options, so tests see what training passed."""

    def __init__(self) -> None:
        self.builds: list[tuple[str, dict[str, Any]]] = []

    def build(self, split: str, **options: Any) -> list[dict[str, Any]]:
        self.builds.append((split, dict(options)))
        scale = float(options.get("scale", 1.0))  # what the modality's preprocess would do with the option
        generator = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
        return [{"signal": scale * (torch.full((6, 2), 1.0 if i % 2 else -1.0) + 0.05 * torch.randn(6, 2, generator=generator)),
                 "caption": "It is high." if i % 2 else "It is low.", "label": "high" if i % 2 else "low"}
                for i in range(8)]

    @hookimpl
    def register_modalities(self, register):
        register(DialModality())

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec(name="dial:levels", modality="dial", build=self.build, description="high and low dials",
                             labels=("high", "low"), questions=("Is it high or low?",), info={"task": "level"}))


@pytest.fixture
def dial() -> DialPlugin:
    return DialPlugin()


@pytest.fixture
def host(tiny, monkeypatch, dial) -> AnymalHost:
    monkeypatch.setenv("ANYMAL_LOAD_PLUGINS", "")
    return AnymalHost(tiny, registry=Registry.from_environment(extra_plugins=[toy_plugin, dial]))


def short(tmp_path, **overrides) -> TrainConfig:
    base = dict(dataset="dial:levels", output_dir=str(tmp_path / "run"), steps=2, batch_size=4, lr=5e-3, eval_every=2,
                val_items=4, warmup_steps=1)
    return TrainConfig(**{**base, **overrides})


# ----- the encoder config ---------------------------------------------------------------------------------


def test_encoder_options_without_a_name_change_the_default_encoder(tmp_path, host):
    result = train(short(tmp_path, encoder={"width": 6}), host, progress=False)
    encoder = read_package_config(result.best_dir).encoder
    assert encoder.name == "toy" and encoder.config == {"width": 6}


def test_an_encoder_name_of_its_own_replaces_the_default(tmp_path, host):
    result = train(short(tmp_path, encoder={"name": "toy-small"}), host, progress=False)
    encoder = read_package_config(result.best_dir).encoder
    assert encoder.name == "toy-small" and encoder.config == {}  # the default's width belongs to another encoder


def test_no_default_and_no_name_names_the_fix(tmp_path, host):
    with pytest.raises(ValueError, match=r"modality 'toy' declares no default encoder, so the encoder config needs a "
                                         r"'name': pass --encoder-option name=ENCODER with width=6"):
        train(short(tmp_path, dataset="toy:levels", encoder={"width": 6}), host, progress=False)


# ----- preprocessing --------------------------------------------------------------------------------------


def test_preprocessing_is_recorded_and_the_data_is_built_with_it(tmp_path, host, dial):
    result = train(short(tmp_path, preprocessing={"scale": 2.0}), host, progress=False)
    assert read_package_config(result.best_dir).preprocessing == {"scale": 2.0}
    assert {split for split, _ in dial.builds} == {"train", "val"}
    assert all(options == {"seed": 0, "scale": 2.0} for _, options in dial.builds)

    # evaluation builds the data the way the adapter was trained, and explicit options go on top
    from anymal_host.evaluation import evaluate

    name = host.load_adapter(str(result.best_dir))
    dial.builds.clear()
    evaluate(host, host.registry.dataset("dial:levels"), adapter=name, limit=2, baseline=False, progress=False,
             max_new_tokens=2, caption_scores=False)
    evaluate(host, host.registry.dataset("dial:levels"), adapter=name, limit=2, baseline=False, progress=False,
             max_new_tokens=2, caption_scores=False, build_options={"scale": 3.0, "extra": "x"})
    assert dial.builds == [("test", {"scale": 2.0}), ("test", {"scale": 3.0, "extra": "x"})]


def test_a_preprocessing_seed_is_refused_before_training(tmp_path, host, dial):
    with pytest.raises(ValueError, match="preprocessing option 'seed' clashes"):
        train(short(tmp_path, preprocessing={"seed": 1}), host, progress=False)
    assert dial.builds == []


def test_cli_flags_reach_the_data_and_the_package(tmp_path, host, dial, monkeypatch):
    """The third party's command line: --encoder-option width=6 without name=, and --preprocess."""
    from click.testing import CliRunner

    from anymal_host.cli_training import eval_command, train_group

    monkeypatch.setattr("anymal_host.host.AnymalHost", lambda *args, **kwargs: host)  # the tiny LLM's host
    out = tmp_path / "cli"
    result = CliRunner().invoke(train_group, ["align", "--data", "dial:levels", "--out", str(out), "--steps", "2",
                                              "--batch-size", "4", "--eval-every", "2", "--val-items", "4",
                                              "--encoder-option", "width=6", "--preprocess", "scale=2",
                                              "--preprocess", "mode=fast"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = read_package_config(out / "best")
    assert config.encoder.name == "toy" and config.encoder.config == {"width": 6}
    assert config.preprocessing == {"scale": 2, "mode": "fast"}  # JSON where it parses, else a string
    assert dial.builds[0] == ("train", {"seed": 0, "scale": 2, "mode": "fast"})

    dial.builds.clear()
    result = CliRunner().invoke(eval_command, ["--data", "dial:levels", "--adapter", str(out / "best"), "--limit", "2",
                                               "--no-baseline", "--max-new-tokens", "2", "--preprocess", "scale=3"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert dial.builds == [("test", {"scale": 3, "mode": "fast"})]


# ----- anymal datasets ------------------------------------------------------------------------------------


def test_anymal_datasets_lists_what_the_registry_holds(host, monkeypatch):
    from click.testing import CliRunner

    from anymal_host import plugins
    from anymal_host.cli import cli

    monkeypatch.setattr(plugins, "_registry", host.registry)  # what get_registry() returns
    result = CliRunner().invoke(cli, ["datasets"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if not line.startswith(" ")]
    assert names == sorted(host.registry.datasets) == ["dial:levels", "toy:levels", "toy:ramps"]  # the Python twin
    assert "dial:levels  (modality dial, plugin " in result.output
    dial_block = result.output.split("dial:levels", 1)[1].split("toy:levels", 1)[0]
    assert "high and low dials" in dial_block and "labels: high, low (class names matched in the answer)" in dial_block
    assert "evaluation asks 'Is it high or low?'" in dial_block and "task: level" in dial_block

    only = CliRunner().invoke(cli, ["datasets", "--modality", "toy"], catch_exceptions=False).output
    assert [line.split()[0] for line in only.splitlines() if not line.startswith(" ")] == ["toy:levels", "toy:ramps"]
    assert "labels: none declared" in only
    none = CliRunner().invoke(cli, ["datasets", "--modality", "smell"], catch_exceptions=False).output
    assert "No data set of modality 'smell' is registered (data sets exist for: dial, toy)." in none
