"""--label-loss: a classifier per question reads each item's label from the adapter's tokens during training only."""

import pytest
import torch
from safetensors.torch import load_file

from adapters_hub import check_package, load_adapter_package
from anymal_host import AnymalHost
from anymal_host.errors import TrainConfigError
from anymal_host.training import TrainConfig, train
from anymal_host.training.checkpoint import export_package
from anymal_host.training.label_heads import LABEL_HEADS, MAX_CLASSES, LabelHeads, task_of


@pytest.fixture
def host(tiny, registry):
    return AnymalHost(tiny, registry=registry)


def config(tmp_path, **overrides):
    base = dict(dataset="toy:levels", output_dir=str(tmp_path / "run"), projector="perceiver",
                projector_options={"heads": 4, "dim": 16}, num_tokens=3, encoder={"name": "toy", "width": 8},
                train_encoder=False, steps=8, batch_size=4, lr=5e-3, eval_every=4, val_items=4, val_generate=0,
                warmup_steps=2, seed=0, label_loss=1.0)
    return TrainConfig(**{**base, **overrides})


def test_the_label_loss_is_trained_recorded_and_kept_out_of_the_package(tmp_path, host):
    result = train(config(tmp_path, steps=16, eval_every=8), host, progress=False)
    label_losses = [h["label_loss"] for h in result.history]
    assert len(label_losses) == 16 and sum(label_losses[-4:]) < sum(label_losses[:4])
    # the package holds the adapter only: hosts never see the classifiers
    _, tensors = load_adapter_package(result.best_dir)
    assert {k.split(".")[0] for k in tensors} == {"encoder", "projector"}
    heads = load_file(str(result.best_dir / LABEL_HEADS))
    assert heads["heads.0.1.weight"].shape == (2, 3 * 32)  # high / low from 3 tokens of width 32, flattened
    exported = tmp_path / "exported"
    assert LABEL_HEADS in export_package(result.best_dir, exported)
    assert LABEL_HEADS not in check_package(exported).files


def test_the_label_loss_changes_what_the_projector_learns(tmp_path, host):
    with_labels = train(config(tmp_path / "a"), host, progress=False)
    without = train(config(tmp_path / "b", label_loss=0.0), host, progress=False)
    assert "label_loss" not in without.history[-1] and not (without.best_dir / LABEL_HEADS).exists()
    # the caption loss is the same figure in both (validation compares runs), the projectors differ
    assert with_labels.history[0]["loss"] == pytest.approx(without.history[0]["loss"], rel=1e-5)
    _, a = load_adapter_package(with_labels.last_dir)
    _, b = load_adapter_package(without.last_dir)
    assert not torch.allclose(a["projector.latents"], b["projector.latents"])


def test_resume_restores_the_classifiers_and_continues_exactly(tmp_path, host):
    straight = train(config(tmp_path / "a"), host, progress=False)
    halfway = straight.output_dir / "checkpoints" / "step-000004"
    resumed = train(config(tmp_path / "b", resume_from=str(halfway)), host, progress=False)
    for key in ("loss", "label_loss"):
        assert resumed.history[-1][key] == pytest.approx(straight.history[-1][key], rel=1e-4)
    # a checkpoint of a run without the label loss has no classifiers to resume
    plain = train(config(tmp_path / "c", label_loss=0.0, steps=4), host, progress=False)
    with pytest.raises(TrainConfigError, match="trained without --label-loss"):
        train(config(tmp_path / "d", resume_from=str(plain.last_dir)), host, progress=False)


def test_labels_alone_train_without_running_the_llm_in_the_steps(tmp_path, host, monkeypatch):
    calls = {"n": 0}
    forward = host.llm.forward

    def counting(*args, **kwargs):
        calls["n"] += 1
        return forward(*args, **kwargs)

    monkeypatch.setattr(host.llm, "forward", counting)
    result = train(config(tmp_path, caption_loss=0.0, steps=12, eval_every=12), host, progress=False)
    assert calls["n"] == 1  # the one validation's caption loss (4 items, one batch); no step ran the LLM
    assert all("loss" not in h for h in result.history)
    label_losses = [h["label_loss"] for h in result.history]
    assert sum(label_losses[-4:]) < sum(label_losses[:4])
    # best/ is the newest checkpoint: the run does not try to lower the caption loss
    _, best = load_adapter_package(result.best_dir)
    _, last = load_adapter_package(result.last_dir)
    assert all(torch.equal(best[k], last[k]) for k in best)
    assert (result.output_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("field", ["label_loss", "caption_loss"])
@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_a_bad_weight_is_refused_before_anything_is_built(tmp_path, host, field, weight):
    with pytest.raises(TrainConfigError, match=f"{field} must be a weight of 0"):
        train(config(tmp_path, **{field: weight}), host, progress=False)


def test_turning_both_losses_off_is_refused(tmp_path, host):
    with pytest.raises(TrainConfigError, match="nothing would train"):
        train(config(tmp_path, caption_loss=0.0, label_loss=0.0), host, progress=False)


def test_a_data_set_without_labels_is_refused_with_the_fix():
    items = [{"signal": torch.zeros(2), "caption": "x"}] * 3
    with pytest.raises(TrainConfigError, match="train without --label-loss"):
        LabelHeads(items, num_tokens=2, hidden_size=4, fixed=True)


def test_one_classifier_per_question_and_free_text_labels_get_none():
    items = ([{"question": "What shape?", "label": s} for s in ("circle", "square")]
             + [{"question": "Describe it.", "label": f"caption {i}"} for i in range(MAX_CLASSES + 1)]
             + [{"questions": ["How many?", "Count them."], "label": n} for n in ("one", "two", "three")]
             + [{"messages": [], "label": "one"}, {"question": "What shape?"}])
    heads = LabelHeads(items, num_tokens=2, hidden_size=4, fixed=False)
    assert heads.classes == {"How many? | Count them.": ["one", "three", "two"], "What shape?": ["circle", "square"]}
    assert task_of(items[-2]) is None and task_of(items[-1]) is None
    # per-step tokens (any count) are averaged; the loss covers the items that have a classifier only
    tokens = [torch.randn(5, 4), torch.randn(7, 4), torch.randn(3, 4)]
    loss = heads.loss([items[0], items[2], items[-2]], tokens)
    assert loss is not None and loss.ndim == 0 and loss > 0
    # a batch of items without a classifier still gives a loss that reaches the tokens (0), no tokens none
    leaf = torch.randn(5, 4, requires_grad=True)
    zero = heads.loss([items[2]], [leaf])
    zero.backward()
    assert zero.item() == 0 and leaf.grad is not None and heads.loss([], []) is None
