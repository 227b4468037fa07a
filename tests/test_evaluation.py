"""anymal_host.evaluation: exact scoring on hand-made answers, caption metrics against hand computations,
item selection, saving, and one run end to end through the tiny LLaMA with the toy modality."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from anymal_host import AdapterNotFoundError, Attachment, DatasetSpec
from anymal_host.evaluation import (
    DEFAULT_QUESTION,
    UNPARSED,
    EvalReport,
    caption_metrics,
    evaluate,
    label_matcher,
    save_confusion_png,
    save_report,
    score,
    select_items,
)

LABELS = ["rising", "falling"]
PARSE = {"it rises": "rising", "it falls": "falling", "it wobbles": "wobbling"}.get


def hand_report() -> EvalReport:
    # predicted: rising, falling, rising, None (no class), None ("wobbling" is not a class)
    return score(
        answers=["it rises", "it falls", "it rises", "hmm", "it wobbles"],
        references=["It rises.", "It rises.", "It falls.", "It falls.", "It falls."],
        true_labels=["rising", "rising", "falling", "falling", "falling"],
        labels=LABELS, parse_label=PARSE, dataset="toy:hand", split="test", question="What is it doing?", task="shape",
    )


# ----- scoring --------------------------------------------------------------------------------------------


def test_accuracy_per_class_and_confusion_are_exact():
    report = hand_report()
    assert report.n == 5
    assert report.accuracy == pytest.approx(1 / 5)
    assert report.per_class_accuracy == {"rising": pytest.approx(0.5), "falling": 0.0}
    assert report.support == {"rising": 2, "falling": 3}
    assert report.confusion_columns == ["rising", "falling", UNPARSED]
    #                            rising falling unparsed
    assert report.confusion == [[1, 1, 0],   # true rising
                                [1, 0, 2]]   # true falling: a class outside the labels counts as unparsed
    assert report.unparsed == 2


def test_a_class_without_items_has_no_accuracy_rather_than_zero():
    report = score(["it rises"], ["It rises."], ["rising"], LABELS, PARSE, caption_scores=False)
    assert report.per_class_accuracy == {"rising": 1.0, "falling": None}
    assert report.bleu4 is None and report.cider is None


def test_a_true_label_outside_the_classes_is_explained():
    with pytest.raises(ValueError, match="label 'sideways', which is not one of the data set's labels"):
        score(["it rises"], ["It rises."], ["sideways"], LABELS, PARSE, caption_scores=False)


def test_mismatched_lengths_are_explained():
    with pytest.raises(ValueError, match="one reference and one true label per answer"):
        score(["a", "b"], ["a"], ["rising", "rising"], LABELS, PARSE)


def test_without_labels_only_caption_metrics_are_reported():
    report = score(["it rises"], ["It rises."], [None], [], None)
    assert report.accuracy is None and report.confusion == [] and report.labels == []
    assert report.rouge_l == pytest.approx(1.0)
    assert "accuracy" not in report.metrics_for_card()


def test_examples_show_every_class_first():
    report = score(["a", "b", "c", "d"], ["w", "x", "y", "z"], ["rising", "rising", "rising", "falling"], LABELS,
                   lambda _: None, n_examples=2, caption_scores=False)
    assert [(e["answer"], e["label"], e["predicted"]) for e in report.examples] == [("a", "rising", None), ("d", "falling", None)]


# ----- caption metrics ------------------------------------------------------------------------------------


def test_identical_captions_score_perfectly():
    captions = ["the person is walking up the stairs", "someone is sitting still on a chair"]
    metrics = caption_metrics(captions, captions)
    assert metrics["bleu4"] == pytest.approx(100.0)
    assert metrics["rouge_l"] == pytest.approx(1.0)
    # Every n-gram of each caption occurs in one reference only: equal idf weights, cosine 1 for n = 1..4,
    # no length penalty, times CIDEr's factor 10.
    assert metrics["cider"] == pytest.approx(10.0)


def test_caption_metrics_match_a_hand_computation():
    # ROUGE-L: the longest common subsequence of "the cat sat down" / "the sat down quickly" is "the sat down":
    # precision 3/4, recall 3/4, F 0.75.
    assert caption_metrics(["the cat sat down"], ["the sat down quickly"])["rouge_l"] == pytest.approx(0.75)
    # No word in common: no n-gram matches, BLEU and CIDEr are 0.
    metrics = caption_metrics(["red green blue yellow"], ["one two three four"])
    assert metrics == {"bleu4": pytest.approx(0.0), "rouge_l": 0.0, "cider": 0.0}
    # Case and punctuation do not matter to CIDEr's tokens (as with COCO's tokenizer).
    assert caption_metrics(["The Person, walking."], ["the person walking"])["cider"] == pytest.approx(
        caption_metrics(["the person walking"], ["the person walking"])["cider"])


def test_empty_answers_and_references_do_not_crash():
    assert caption_metrics([""], [""])["cider"] == 0.0
    assert caption_metrics(["", "it rises"], ["It rises.", "It falls."])["rouge_l"] == pytest.approx(0.25)


# ----- item selection and label parsing -------------------------------------------------------------------


def labelled(n_a: int, n_b: int) -> list[dict]:
    return [{"i": i, "label": "a"} for i in range(n_a)] + [{"i": n_a + i, "label": "b"} for i in range(n_b)]


def test_limit_is_class_balanced_deterministic_and_in_order():
    items = labelled(8, 2)
    chosen = select_items(items, 4, seed=0)
    assert [x["label"] for x in chosen].count("b") == 2 and len(chosen) == 4
    assert chosen == select_items(items, 4, seed=0)
    assert [x["i"] for x in chosen] == sorted(x["i"] for x in chosen)
    assert len({tuple(x["i"] for x in select_items(items, 4, seed=s)) for s in range(10)}) > 1  # the seed matters
    assert select_items(items, None) == items and select_items(items, 50) == items


def test_limit_without_labels_samples_deterministically():
    items = [{"i": i} for i in range(20)]
    assert select_items(items, 5, seed=3) == select_items(items, 5, seed=3)
    assert len(select_items(items, 5, seed=3)) == 5


def test_label_matcher_prefers_the_earliest_then_the_longest_name():
    parse = label_matcher(["walking", "walking upstairs", "sitting"])
    assert parse("The person is Walking  upstairs.") == "walking upstairs"
    assert parse("sitting, then walking") == "sitting"
    assert parse("sitter") is None


# ----- report ---------------------------------------------------------------------------------------------


def test_report_is_json_serialisable_and_round_trips():
    report = hand_report()
    report.baseline = dataclasses.replace(hand_report(), adapter=None)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["baseline"]["accuracy"] == pytest.approx(0.2)
    assert EvalReport.from_dict(data) == report


def test_card_metrics_and_summary_show_both_figures():
    report = hand_report()
    report.baseline = score(["it falls"] * 5, ["It rises."] * 2 + ["It falls."] * 3, ["rising"] * 2 + ["falling"] * 3,
                            LABELS, PARSE, split="test", task="shape")
    card = report.metrics_for_card()
    assert card["shape_accuracy"] == pytest.approx(0.2)
    assert card["text_only_shape_accuracy"] == pytest.approx(0.6)
    assert card["n_test"] == 5.0
    assert {"bleu4", "rouge_l", "cider", "text_only_bleu4"} <= set(card)
    assert all(isinstance(v, float) for v in card.values())
    text = report.summary()
    assert "with signal" in text and "text only" in text
    accuracy_line = next(line for line in text.splitlines() if line.startswith("shape accuracy"))
    assert "20.0%" in accuracy_line and "60.0%" in accuracy_line
    assert "unparsed" in text and "falling" in text


def test_confusion_png_and_report_folder(tmp_path):
    report = hand_report()
    png = save_confusion_png(report, tmp_path / "sub" / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    written = save_report(report, tmp_path / "eval")
    assert written["json"].name == "eval_report.json" and written["png"].name == "confusion_matrix.png"
    assert json.loads(written["json"].read_text()) == json.loads(json.dumps(report.to_dict()))
    assert written["png"].stat().st_size > 1000


def test_a_report_without_labels_saves_json_only(tmp_path):
    report = score(["x"], ["y"], [None], [], None, caption_scores=False)
    assert set(save_report(report, tmp_path)) == {"json"}
    with pytest.raises(ValueError, match="no confusion matrix"):
        save_confusion_png(report, tmp_path / "cm.png")


# ----- end to end through the tiny host -------------------------------------------------------------------


def ramps(split: str, **options) -> list[dict]:
    """12 toy ramps: 8 rising, 4 falling (unbalanced, so a balanced limit shows)."""
    generator = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
    items = []
    for i in range(12):
        rising = i % 3 != 2
        base = torch.linspace(0, 1, 6 + i) if rising else torch.linspace(1, 0, 6 + i)
        items.append({"signal": torch.stack([base, base], 1) + 0.01 * torch.randn(6 + i, 2, generator=generator),
                      "caption": "the signal is rising" if rising else "the signal is falling",
                      "label": "rising" if rising else "falling"})
    return items


def vowel_parser(text: str) -> str | None:
    """Deterministic in the answer, so the expected accuracy can be recomputed from the answers."""
    if not text:
        return None
    return "rising" if sum(c in "aeiou" for c in text) % 2 == 0 else "falling"


@pytest.fixture
def spec() -> DatasetSpec:
    return DatasetSpec(name="toy:eval", modality="toy", build=ramps, labels=("rising", "falling"),
                       parse_label=vowel_parser, questions=("what is the person doing",), info={"task": "shape"})


@pytest.fixture
def recorded(toy_host, monkeypatch):
    """Every conversation and answer that goes through ``toy_host.generate``, call by call."""
    calls: list[tuple[list, list[str], dict]] = []
    real = toy_host.generate

    def generate(conversations, max_new_tokens=64, **kwargs):
        answers = real(conversations, max_new_tokens=max_new_tokens, **kwargs)
        calls.append((list(conversations), answers, {"max_new_tokens": max_new_tokens, **kwargs}))
        return answers

    monkeypatch.setattr(toy_host, "generate", generate)
    return calls


def test_evaluate_end_to_end_on_the_tiny_host(toy_host, spec, recorded, tmp_path):
    report = evaluate(toy_host, spec, split="test", batch_size=5, max_new_tokens=6, progress=False)

    with_signal = [call for call in recorded if isinstance(call[0][0][0]["content"], list)]
    text_only = [call for call in recorded if isinstance(call[0][0][0]["content"], str)]
    assert [len(c[0]) for c in with_signal] == [5, 5, 2]  # batches of batch_size
    assert all(c[2] == {"max_new_tokens": 6, "do_sample": False} for c in recorded)  # greedy
    # the signal goes first, as a preprocessed attachment of the data set's modality, then the question
    first = with_signal[0][0][0][0]["content"]
    assert isinstance(first[0], Attachment) and first[0].preprocessed and first[0].modality == "toy"
    assert torch.equal(first[0].source, ramps("test")[0]["signal"]) and first[1] == "what is the person doing"
    # the baseline asks the same question without the signal, once for all items
    assert len(text_only) == 1 and text_only[0][0] == [[{"role": "user", "content": "what is the person doing"}]]

    answers = [a for call in with_signal for a in call[1]]
    truth = [item["label"] for item in ramps("test")]
    expected = sum(vowel_parser(a) == t for a, t in zip(answers, truth)) / len(truth)
    assert report.n == 12 and report.accuracy == pytest.approx(expected)
    assert sum(map(sum, report.confusion)) == 12 and report.support == {"rising": 8, "falling": 4}
    assert report.adapter == "toy-meanpool" and report.question == "what is the person doing"
    assert report.bleu4 is not None and report.rouge_l is not None and report.cider is not None

    base = report.baseline
    assert base is not None and base.n == 12 and base.adapter is None
    # one answer for every item: the baseline predicts one class (or none) for all of them
    text_answer = text_only[0][1][0]
    guess = vowel_parser(text_answer)
    assert base.accuracy == pytest.approx(sum(guess == t for t in truth) / 12)
    assert base.examples[0]["answer"] == text_answer

    card = report.metrics_for_card()
    assert {"shape_accuracy", "text_only_shape_accuracy", "bleu4", "rouge_l", "cider", "n_test"} <= set(card)
    written = save_report(report, tmp_path)
    assert json.loads(written["json"].read_text())["baseline"]["n"] == 12
    assert written["png"].stat().st_size > 0


def test_evaluate_limit_and_no_baseline(toy_host, spec, recorded):
    report = evaluate(toy_host, spec, limit=4, baseline=False, progress=False, max_new_tokens=2, adapter="toy-meanpool")
    assert report.n == 4 and report.baseline is None
    assert report.support == {"rising": 2, "falling": 2}  # balanced although the split is 8:4
    assert len(recorded) == 1 and all(a.adapter == "toy-meanpool" for a in
                                      (conv[0]["content"][0] for conv in recorded[0][0]))


def test_evaluate_a_data_set_without_labels_or_questions(toy_host, registry, recorded):
    # toy:ramps names no classes and no parser: classes come from the items, the parser matches class names,
    # and the question is the generic one
    report = evaluate(toy_host, registry.dataset("toy:ramps"), progress=False, max_new_tokens=2)
    assert report.labels == ["falling", "rising"] and report.n == 8
    assert report.question == DEFAULT_QUESTION.format(modality="toy")
    assert report.baseline is not None and report.baseline.question == report.question


def test_evaluate_rejects_a_wrong_adapter_before_generating(toy_host, spec, recorded):
    with pytest.raises(AdapterNotFoundError, match="no adapter named 'nope'"):
        evaluate(toy_host, spec, adapter="nope", progress=False)
    other = dataclasses.replace(spec, modality="imu")
    with pytest.raises(ValueError, match="adapter 'toy-meanpool' is for modality 'toy'"):
        evaluate(toy_host, other, adapter="toy-meanpool", progress=False)
    assert recorded == []


def test_evaluate_explains_an_empty_split(toy_host, spec):
    empty = dataclasses.replace(spec, build=lambda split, **_: [])
    with pytest.raises(ValueError, match="no items in split 'test'"):
        evaluate(toy_host, empty, progress=False)


def test_card_figures_of_several_evaluations_sit_side_by_side(tmp_path, tiny, registry):
    """Two evaluations written into one package (the second under a prefix) keep both figures, and the card
    lists both commands; the package still loads."""
    from adapters_hub import load_adapter_package, read_package_config, save_adapter_package
    from anymal_host import ModalityAdapter
    from anymal_host.card_metrics import prefixed, write_metrics

    from .conftest import toy_config

    adapter = ModalityAdapter.from_config(toy_config(tiny), registry)
    folder = tmp_path / "toy"
    save_adapter_package(folder, adapter.config, adapter.weights_for_saving())
    card = hand_report().metrics_for_card()
    write_metrics(folder, card, command="anymal eval --data toy:ramps --update-card")
    write_metrics(folder, prefixed(card, "heldout"),
                  command="anymal eval --data toy:ramps --split heldout --update-card --card-prefix heldout")
    metrics = read_package_config(folder).metrics
    key = next(k for k in card if k.endswith("accuracy"))
    assert metrics[key] == metrics[f"heldout_{key}"] == pytest.approx(0.2)
    assert {"n_test", "heldout_n_test", "bleu4", "heldout_bleu4"} <= set(metrics)
    readme = (folder / "README.md").read_text()
    assert f"| heldout_{key} | 0.2 |" in readme
    assert readme.index("--data toy:ramps --update-card") < readme.index("--card-prefix heldout")
    # writing the same evaluation again lists its command once
    write_metrics(folder, card, command="anymal eval --data toy:ramps --update-card")
    assert (folder / "README.md").read_text().count("--data toy:ramps --update-card\n") == 1
    load_adapter_package(folder, installed_modalities={"toy"})


def test_card_prefix_needs_update_card_and_a_plain_name():
    from click.testing import CliRunner

    from anymal_host.cli import make_cli

    main = make_cli()
    result = CliRunner().invoke(main, ["eval", "--data", "toy:ramps", "--card-prefix", "heldout"])
    assert result.exit_code == 2 and "add --update-card" in result.output
    result = CliRunner().invoke(main, ["eval", "--data", "toy:ramps", "--adapter", ".", "--update-card",
                                       "--card-prefix", "held out!"])
    assert result.exit_code == 2 and "use letters, digits and '_'" in result.output


def test_a_task_named_in_words_makes_one_card_key():
    import dataclasses

    report = dataclasses.replace(hand_report(), task="Moving shape")
    assert "moving_shape_accuracy" in report.metrics_for_card()
