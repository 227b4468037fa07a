"""Training on the tiny LLaMA with the toy plugin's data set: loss, checkpoints as packages, resume, curves."""

import json

import pytest
import torch

from adapters_hub import load_adapter_package
from anymal_host import AnymalHost
from anymal_host.training import TrainConfig, train
from anymal_host.training.pretrain import PretrainConfig, pretrain_encoder


@pytest.fixture
def host(tiny, registry):
    return AnymalHost(tiny, registry=registry)


def config(tmp_path, **overrides):
    base = dict(dataset="toy:ramps", output_dir=str(tmp_path / "run"), projector="linear", encoder={"name": "toy", "width": 8},
                steps=12, batch_size=4, lr=5e-3, eval_every=6, val_items=4, val_generate=4, warmup_steps=2, seed=0)
    return TrainConfig(**{**base, **overrides})


def test_stage1_trains_the_adapter_only_and_writes_packages(tmp_path, host):
    frozen = {k: v.clone() for k, v in host.llm.model.state_dict().items()}
    result = train(config(tmp_path), host, progress=False)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 12 and sum(losses[-4:]) < sum(losses[:4])
    assert [h["step"] for h in result.history if "val_loss" in h] == [6, 12]
    # the LLM did not move
    assert all(torch.equal(v, host.llm.model.state_dict()[k]) for k, v in frozen.items())
    # best/ and every checkpoint are adapter packages that pass the host's checks
    cfg, tensors = load_adapter_package(result.best_dir, installed_modalities={"toy"}, host_hidden_size=32,
                                        host_fingerprint=host.llm.fingerprint)
    assert cfg.modality == "toy" and cfg.projector.type == "linear" and cfg.llm.fingerprint == host.llm.fingerprint
    assert {k.split(".")[0] for k in tensors} == {"encoder", "projector"}
    assert "val_loss" in cfg.metrics and "val_accuracy" in cfg.metrics  # toy:ramps items carry labels
    assert (result.output_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((result.output_dir / "history.json").read_text())) == 12
    assert sorted(p.name for p in (result.output_dir / "checkpoints").iterdir()) == ["step-000006", "step-000012"]


def test_frozen_encoder_stays_put(tmp_path, host):
    result = train(config(tmp_path, train_encoder=False, steps=4, eval_every=4), host, progress=False)
    _, first = load_adapter_package(result.best_dir)
    torch.manual_seed(0)
    from anymal_host import ModalityAdapter

    fresh = ModalityAdapter.from_config(_config_of(result), host.registry)
    assert all(torch.equal(first[k], v) for k, v in fresh.weights_for_saving().items() if k.startswith("encoder."))


def test_a_frozen_encoder_is_run_once_per_item_with_the_same_result(tmp_path, host, monkeypatch):
    """With the encoder frozen, training encodes every item once before the first step (cache_features) and
    the steps run the projector only: the losses, validation and weights match a run that encodes at every step."""
    encoder_type = type(host.registry.modality("toy").build_encoder({"name": "toy", "width": 8}))
    calls = {"n": 0}
    original = encoder_type.forward

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(encoder_type, "forward", counting)
    overrides = dict(train_encoder=False, steps=6, eval_every=3)
    cached = train(config(tmp_path / "cached", **overrides), host, progress=False)
    calls_cached, calls["n"] = calls["n"], 0
    every_step = train(config(tmp_path / "every", cache_features=False, **overrides), host, progress=False)
    def figures(result):
        return [h.get(key, -1.0) for h in result.history for key in ("loss", "val_loss", "val_accuracy")]

    assert figures(cached) == pytest.approx(figures(every_step), rel=1e-5, abs=1e-6)
    _, a = load_adapter_package(cached.best_dir)
    _, b = load_adapter_package(every_step.best_dir)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # the cached run encodes up front only: twice the steps, not one encoder call more
    calls_every, calls["n"] = calls["n"], 0
    train(config(tmp_path / "longer", **{**overrides, "steps": 12}), host, progress=False)
    assert calls["n"] == calls_cached < calls_every


def test_a_trainable_encoder_is_not_cached(tmp_path, host):
    from anymal_host.training.features import EncodedSignal
    from anymal_host.training.loop import _Run

    run = _Run.setup(config(tmp_path), host, progress=False)
    assert not any(isinstance(item["signal"], EncodedSignal) for item in run.train_items + run.val_items)
    run.bar.close()
    frozen = _Run.setup(config(tmp_path / "frozen", train_encoder=False), host, progress=False)
    assert all(isinstance(item["signal"], EncodedSignal) for item in frozen.train_items + frozen.val_items)
    frozen.bar.close()


def _config_of(result):
    from adapters_hub import read_package_config

    return read_package_config(result.best_dir)


def test_resume_continues_exactly(tmp_path, host):
    straight = train(config(tmp_path / "a", steps=8, eval_every=4), host, progress=False)
    halfway = straight.output_dir / "checkpoints" / "step-000004"  # as if the run had died after step 4
    resumed = train(config(tmp_path / "b", steps=8, eval_every=4, resume_from=str(halfway)), host, progress=False)
    assert [h["step"] for h in resumed.history] == list(range(1, 9))
    assert resumed.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-4)
    # validation answers are greedy and resume with the history: the accuracy record continues the same way
    assert [h.get("val_accuracy") for h in resumed.history] == [h.get("val_accuracy") for h in straight.history]
    assert [h.get("not_learning") for h in resumed.history] == [h.get("not_learning") for h in straight.history]
    _, a = load_adapter_package(straight.last_dir)
    _, b = load_adapter_package(resumed.last_dir)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_stop_after_ends_part_way_through_the_schedule_and_resume_finishes_it(tmp_path, host):
    from anymal_host.errors import TrainConfigError

    straight = train(config(tmp_path / "a", steps=8, eval_every=4), host, progress=False)
    stopped = train(config(tmp_path / "b", steps=8, eval_every=3, stop_after=5), host, progress=False)
    # the steps of the longer schedule, not a shorter schedule: the same losses as the straight run's first five
    assert [h["step"] for h in stopped.history] == [1, 2, 3, 4, 5]
    assert stopped.history[-1]["loss"] == pytest.approx(straight.history[4]["loss"], rel=1e-4)
    assert (stopped.output_dir / "checkpoints" / "step-000005").is_dir()  # the last step is checkpointed
    cfg, _ = load_adapter_package(stopped.last_dir)
    assert cfg.metrics["step"] == 5 and "5 of 8 steps" in cfg.description
    assert "5 of 8 steps" in (stopped.last_dir / "README.md").read_text()
    finished = train(config(tmp_path / "c", steps=8, eval_every=4, resume_from=str(stopped.last_dir)), host,
                     progress=False)
    assert finished.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-4)
    assert "8 steps" in load_adapter_package(finished.last_dir)[0].description
    for bad in (0, 9):
        with pytest.raises(TrainConfigError, match="stop_after must be a step of the schedule, 1 to steps"):
            train(config(tmp_path / f"bad{bad}", steps=8, stop_after=bad), host, progress=False)


def test_perceiver_and_lora_stage2(tmp_path, tiny, registry):
    from anymal_host.testing import tiny_llm

    host = AnymalHost(tiny_llm(), registry=registry)  # stage 2 wraps the LLM in LoRA: use a private one
    result = train(config(tmp_path, stage=2, projector="perceiver", projector_options={"heads": 4, "dim": 16},
                          num_tokens=3, steps=4, eval_every=4), host, progress=False)
    cfg, tensors = load_adapter_package(result.best_dir)
    assert cfg.lora is not None and cfg.lora["r"] == 8
    assert (result.best_dir / "lora" / "adapter_model.safetensors").is_file()
    assert tensors["projector.latents"].shape == (3, 16)


def test_init_encoder_must_match(tmp_path, host):
    pre = pretrain_encoder(PretrainConfig(dataset="toy:levels", output_dir=str(tmp_path / "pre"),
                                          encoder={"name": "toy", "width": 8}, steps=30, batch_size=8, eval_every=15),
                           host, progress=False)
    assert pre.encoder_weights.is_file() and (tmp_path / "pre" / "pretrain_curve.png").is_file()
    # high vs low levels are trivially separable: pre-alignment finds them
    assert pre.val_retrieval_accuracy == 1.0
    train(config(tmp_path, init_encoder=str(pre.encoder_weights), steps=2, eval_every=2), host, progress=False)
    with pytest.raises(ValueError, match="pre-align with the same encoder options"):
        train(config(tmp_path / "c", init_encoder=str(pre.encoder_weights), encoder={"name": "toy", "width": 6},
                     steps=2, eval_every=2), host, progress=False)


def test_init_from_starts_a_fresh_run_from_a_trained_package(tmp_path, host):
    from anymal_host import ModalityAdapter
    from anymal_host.errors import TrainConfigError
    from anymal_host.loading import build_adapter

    first = train(config(tmp_path / "a", steps=6, eval_every=6), host, progress=False)
    trained = build_adapter(first.best_dir, host.registry, host.facts)
    # zero steps of a fresh run would be the package itself: one step at a tiny lr stays next to it, while a
    # run from scratch lands far away
    second = train(config(tmp_path / "b", init_from=str(first.best_dir), steps=1, eval_every=1, lr=1e-9,
                          warmup_steps=0), host, progress=False)
    again = build_adapter(second.best_dir, host.registry, host.facts)
    torch.manual_seed(0)
    scratch = ModalityAdapter.from_config(_config_of(second), host.registry)
    for key, value in trained.state_dict().items():
        assert torch.allclose(again.state_dict()[key], value, atol=1e-6)
    assert not all(torch.allclose(scratch.state_dict()[k], v, atol=1e-3) for k, v in trained.state_dict().items())
    assert "initialised from adapter 'toy-linear'" in again.config.description
    assert second.history[0]["step"] == 1  # a fresh schedule, not a resume
    with pytest.raises(TrainConfigError, match="trained with another setup.*projector"):
        train(config(tmp_path / "c", init_from=str(first.best_dir), projector="mlp", steps=1, eval_every=1), host,
              progress=False)


def test_init_from_takes_the_packages_encoder_unless_the_run_names_one(tmp_path, host):
    from anymal_host.errors import TrainConfigError

    first = train(config(tmp_path / "a", encoder={"name": "toy", "width": 6}, steps=2, eval_every=2), host,
                  progress=False)
    second = train(config(tmp_path / "b", encoder={}, init_from=str(first.best_dir), steps=1, eval_every=1), host,
                   progress=False)
    cfg, _ = load_adapter_package(second.best_dir)
    assert (cfg.encoder.name, cfg.encoder.config) == ("toy", {"width": 6})
    with pytest.raises(TrainConfigError, match="trained with another setup.*encoder"):
        train(config(tmp_path / "c", init_from=str(first.best_dir), steps=1, eval_every=1), host, progress=False)


def test_unknown_dataset_is_explained(tmp_path, host):
    from anymal_host import UnknownModalityError

    with pytest.raises(UnknownModalityError, match="unknown data set 'smell:roses'"):
        train(config(tmp_path, dataset="smell:roses"), host, progress=False)


def test_validation_items_are_the_evaluation_s_class_balanced_pick(tmp_path, host):
    # One picker for training and evaluation: validation uses select_items' seeded, class-balanced subset,
    # spread over the split (the loop used to take the first items of each class in data order).
    from anymal_host.evaluation import select_items
    from anymal_host.training.loop import _Run

    run = _Run.setup(config(tmp_path, dataset="toy:levels", val_items=6, seed=3), host, progress=False)
    val = host.registry.dataset("toy:levels").build("val", seed=3)
    expected = select_items(val, 6, seed=3)
    assert len(run.val_items) == 6
    assert [item["signal"].tolist() for item in run.val_items] == [item["signal"].tolist() for item in expected]
    assert sorted(item["label"] for item in run.val_items) == ["high"] * 3 + ["low"] * 3
    first_of_each = [item for item in val if item["label"] == "high"][:3] + [item for item in val if item["label"] == "low"][:3]
    assert {tuple(item["signal"].flatten().tolist()) for item in run.val_items} != \
           {tuple(item["signal"].flatten().tolist()) for item in first_of_each}
    run.bar.close()


def test_a_frozen_pretrained_encoder_is_not_copied_into_the_package(tmp_path, tiny, registry):
    """An encoder whose plugin ships pretrained weights, kept frozen, is left out of adapter.safetensors
    (encoder.weights_included false): hosts build it from the plugin. The package still hot-loads and encodes
    exactly as the trained adapter did."""
    from adapters_hub import read_package_config
    from anymal_host import hookimpl

    from . import toy_plugin

    class PretrainedToyEncoder(toy_plugin.ToyEncoder):
        pretrained_weights = True  # "ships" its weights: a fixed seed stands in for a weights file

        def __init__(self, width: int = 8) -> None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1234)
                super().__init__(width)

    class PretrainedToy(toy_plugin.ToyModality):
        name = "ptoy"
        file_extensions = (".ptoy",)
        media_types = ("application/x-ptoy",)

        def build_encoder(self, config):
            return PretrainedToyEncoder(width=int(config.get("width", 8)))

    levels = registry.datasets["toy:levels"]

    class Plugin:
        @hookimpl
        def register_modalities(self, register):
            register(PretrainedToy())

        @hookimpl
        def register_datasets(self, register):
            register(type(levels)(name="ptoy:levels", modality="ptoy", build=levels.build, labels=levels.labels,
                                  parse_label=levels.parse_label))

    registry.add_plugin(Plugin(), name="ptoy-plugin")
    host = AnymalHost(tiny, registry=registry)
    result = train(config(tmp_path, dataset="ptoy:levels", encoder={"name": "ptoy", "width": 8}, train_encoder=False,
                          steps=2, eval_every=2), host, progress=False)
    packaged = read_package_config(result.best_dir)
    assert packaged.encoder.weights_included is False and packaged.encoder.trainable is False
    _, tensors = load_adapter_package(result.best_dir)
    assert not any(k.startswith("encoder.") for k in tensors)
    name = host.load_adapter(str(result.best_dir), name="from-package")
    signal = toy_plugin.ToyModality().example_input()
    assert host.adapters[name].adapter.encode([signal])[0].shape[1] == tiny.hidden_size

    # trained encoders (the default) are kept
    kept = train(config(tmp_path / "kept", dataset="ptoy:levels", encoder={"name": "ptoy", "width": 8}, steps=2,
                        eval_every=2), host, progress=False)
    assert read_package_config(kept.best_dir).encoder.weights_included is True


def test_gradient_checkpointing_gives_the_same_run_and_leaves_the_llm_as_it_was(tmp_path, host, monkeypatch):
    from transformers.modeling_layers import GradientCheckpointingLayer

    import transformers.modeling_utils as checkpoint_module

    plain = train(config(tmp_path / "a", steps=3, eval_every=3), host, progress=False)
    calls = {"n": 0}
    original = checkpoint_module.checkpoint

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "checkpoint", counting)  # transformers binds it when enabled
    recomputed = train(config(tmp_path / "b", steps=3, eval_every=3, gradient_checkpointing=True), host,
                       progress=False)
    assert calls["n"] >= 3 * 2  # every decoder layer of every training step went through the checkpoint
    assert [h["loss"] for h in recomputed.history] == pytest.approx([h["loss"] for h in plain.history], rel=1e-5)
    layers = [m for m in host.llm.model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert layers and not any(m.training or m.gradient_checkpointing for m in layers)
    assert not any(m.training for m in host.llm.model.modules())  # eval mode throughout: no dropout anywhere
