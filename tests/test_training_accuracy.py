"""Validation accuracy during training: answers generated through the adapter being trained on the tiny LLaMA,
parsed into classes, recorded beside the validation loss, and the warning when it shows no learning."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import pytest

from adapters_hub import read_package_config
from anymal_host import AnymalHost, DatasetSpec, Registry, hookimpl
from anymal_host.training import NotLearningWarning, TrainConfig, train
from anymal_host.training.accuracy import PATIENCE, not_learning_message, not_learning_streak

from . import toy_plugin


def unlabelled(split: str, **options: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "label"} for item in toy_plugin._toy_levels(split)]


class LevelsPlugin:
    """toy:levels again, declared with a third class its items never have (chance 1/3, majority class 1/2),
    and a parser that reads 'high' out of every answer: the collapse onto one class a run must notice."""

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec(name="toy:always-high", modality="toy", build=toy_plugin._toy_levels,
                             labels=("high", "low", "middle"), parse_label=lambda text: "high",
                             questions=("Is it high or low?",)))
        register(DatasetSpec(name="toy:unlabelled", modality="toy", build=unlabelled))


@pytest.fixture
def host(tiny, monkeypatch) -> AnymalHost:
    monkeypatch.setenv("ANYMAL_LOAD_PLUGINS", "")
    return AnymalHost(tiny, registry=Registry.from_environment(extra_plugins=[toy_plugin, LevelsPlugin()]))


def config(tmp_path, **overrides) -> TrainConfig:
    base = dict(dataset="toy:always-high", output_dir=str(tmp_path / "run"), encoder={"name": "toy", "width": 8},
                steps=6, batch_size=4, lr=5e-3, eval_every=2, val_items=4, val_generate=6, warmup_steps=1)
    return TrainConfig(**{**base, **overrides})


def validations(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for h in history if "val_loss" in h]


def test_accuracy_at_the_majority_class_is_recorded_and_warned_about_once(tmp_path, host, capsys):
    with pytest.warns(NotLearningWarning) as caught:
        result = train(config(tmp_path), host, progress=False)
    records = validations(result.history)
    assert [r["step"] for r in records] == [2, 4, 6]
    for record in records:  # every answer is read as 'high': right on the 3 high items of 6, the majority rate
        assert record["val_accuracy"] == pytest.approx(0.5) and record["val_answers"] == 6
        assert record["val_majority"] == pytest.approx(0.5) and record["val_chance"] == pytest.approx(1 / 3)
        assert record["val_top_prediction"] == "high" and record["val_top_share"] == 1.0
    assert [r["not_learning"] for r in records] == [False, True, True]  # flagged from the 2nd validation on
    ours = [w for w in caught if issubclass(w.category, NotLearningWarning)]
    assert len(ours) == 1  # once when it starts, not at every later validation
    message = str(ours[0].message)
    assert "at or below the majority-class rate (50.0%) for 2 validations" in message
    assert "100% of the answers name 'high'" in message and "anymal train pretrain-encoder" in message
    # beside the loss in the progress output, in history.json, the result and the checkpoints' metrics
    out = capsys.readouterr().out
    assert "step 2: train loss" in out and "validation accuracy 50.0% on 6 answers (chance 33.3%, majority class 50.0%)" in out
    saved = validations(json.loads((result.output_dir / "history.json").read_text()))
    assert [r["not_learning"] for r in saved] == [False, True, True]
    assert result.val_accuracy == pytest.approx(0.5)
    assert read_package_config(result.last_dir).metrics["val_accuracy"] == pytest.approx(0.5)
    assert (result.output_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_no_accuracy_without_labels_or_with_val_generate_0(tmp_path, host, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotLearningWarning)
        off = train(config(tmp_path / "off", val_generate=0), host, progress=False)
        assert "validation accuracy: off (--val-generate is 0)" in capsys.readouterr().out
        unlabelled_run = train(config(tmp_path / "none", dataset="toy:unlabelled"), host, progress=False)
        assert "validation accuracy: off (the validation items carry no labels)" in capsys.readouterr().out
    for result in (off, unlabelled_run):
        assert all("val_accuracy" not in r and "not_learning" not in r for r in result.history)
        assert result.val_accuracy is None
        assert "val_accuracy" not in read_package_config(result.last_dir).metrics


def test_the_cli_prints_the_warning_as_a_warning_line(tmp_path, host, monkeypatch):
    from click.testing import CliRunner

    from anymal_host.cli_training import train_group

    monkeypatch.setattr("anymal_host.host.AnymalHost", lambda *args, **kwargs: host)  # the tiny LLM's host
    result = CliRunner().invoke(train_group, ["align", "--data", "toy:always-high", "--out", str(tmp_path / "cli"),
                                              "--encoder-option", "name=toy", "--steps", "4", "--batch-size", "4",
                                              "--eval-every", "2", "--val-items", "4", "--val-generate", "4"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # the progress bar redraws with carriage returns: the warning is a line of its own between them
    lines = [line for line in re.split(r"[\r\n]", result.stderr) if line.startswith("warning: ")]
    assert len(lines) == 1 and "validation accuracy has stayed at or below" in lines[0]
    assert "last validation accuracy: 50.0%" in result.stdout


# ----- the decision, on hand-made histories ---------------------------------------------------------------


def record(step: int, accuracy: float, majority: float = 0.5, chance: float = 0.5) -> dict[str, Any]:
    return {"step": step, "val_loss": 1.0, "val_accuracy": accuracy, "val_answers": 10, "val_majority": majority,
            "val_chance": chance, "val_top_prediction": None, "val_top_share": 0.9}


def test_the_streak_counts_the_latest_validations_at_or_below_the_baseline():
    steps = [{"step": 1, "loss": 2.0}]  # records without a validation do not break a streak
    assert not_learning_streak([]) == 0
    assert not_learning_streak([record(1, 0.5), *steps, record(2, 0.3)]) == 2
    assert not_learning_streak([record(1, 0.2), record(2, 0.6), record(3, 0.5)]) == 1  # learning in between
    assert not_learning_streak([record(1, 0.5), record(2, 0.55)]) == 0
    # the baseline is the larger of majority rate and chance
    assert not_learning_streak([record(1, 0.4, majority=0.45, chance=0.25)]) == 1
    assert not_learning_streak([record(1, 0.4, majority=0.3, chance=0.25)]) == 0
    assert PATIENCE == 2


def test_the_message_suggests_only_what_the_run_did_not_do():
    frozen = not_learning_message(record(4, 0.25, chance=0.25, majority=0.25), 2, train_encoder=False,
                                  init_encoder=False)
    assert frozen.startswith("validation accuracy has stayed at or below chance (25.0%) for 2 validations")
    assert "90% of the answers name no class" in frozen
    assert "drop --freeze-encoder" in frozen and "pretrain-encoder" in frozen and "more --steps" in frozen
    started = not_learning_message(record(4, 0.25), 3, train_encoder=True, init_encoder=True)
    assert "freeze" not in started and "pretrain-encoder" not in started and "fewer templates" in started
