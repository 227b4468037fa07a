"""The data sets: captions known by construction and read back by the parsers, deterministic splits, held-out
colour-shape pairs only in test_heldout, digits from scikit-learn."""

from __future__ import annotations

import random

import pytest
import torch

from anymal_plugin_image.data import (COLORS, COUNT_WORDS, HELD_OUT, PAIRS, SEEN_PAIRS, SHAPES, Scene, Shape,
                                      build_colors, build_counts, build_counts_many, build_digits, build_mix,
                                      build_mix_counts,
                                      build_mix_hard,
                                      build_shapes,
                                      color_from_text, count_from_text, digit_from_text, draw_scene, pair_from_text,
                                      random_scene, shape_from_text)
from anymal_plugin_image.labels import MIX_LABELS, MIX_QUESTIONS

HELD = {" ".join(p) for p in HELD_OUT}


def test_held_out_pairs_are_only_in_test_heldout() -> None:
    assert HELD and HELD.isdisjoint(SEEN_PAIRS) and set(SEEN_PAIRS) | HELD == set(PAIRS)
    for split in ("train", "val", "test"):
        pairs = {item["pair"] for item in build_shapes(split, limit=len(SEEN_PAIRS))}
        assert pairs == set(SEEN_PAIRS), split  # balanced: every seen pair once in the first 9 items
    heldout = build_shapes("test_heldout", limit=6)
    assert {item["pair"] for item in heldout} == HELD and all(item["held_out"] for item in heldout)
    assert not any(item["held_out"] for item in build_shapes("test", limit=6))
    with pytest.raises(ValueError, match="evaluate the held-out colour-shape pairs with image:shapes"):
        build_mix("test_heldout", limit=2)


def test_shapes_and_colors_ask_about_the_same_scenes() -> None:
    shapes, colors = build_shapes("test", limit=6), build_colors("test", limit=6)
    assert all(torch.equal(a["signal"], b["signal"]) and a["pair"] == b["pair"] for a, b in zip(shapes, colors))
    assert all(shape_from_text(i["caption"]) == i["label"] == i["pair"].split()[1] for i in shapes)
    assert all(color_from_text(i["caption"]) == i["label"] == i["pair"].split()[0] for i in colors)
    assert {i["question"] for i in shapes} == {"What shape is in the image?"}
    assert {i["question"] for i in colors} == {"What color is the shape?"}


def test_the_mix_asks_every_question_and_its_answers_name_their_class() -> None:
    from anymal_host.evaluation.labels import label_matcher

    items = build_mix("val", limit=4)
    assert len(items) == 4 * 3 + 4 + 4  # three questions per one-object scene, then counts, then digits
    assert {i["question"] for i in items} == set(MIX_QUESTIONS)
    parse = label_matcher(MIX_LABELS)  # what evaluation and validation read answers with (no parser of its own)
    assert all(parse(i["caption"]) == i["label"] for i in items)
    # the three questions about one scene share its signal (a frozen encoder encodes it once)
    assert items[0]["signal"] is items[1]["signal"] is items[2]["signal"]
    assert {i["label"] for i in items[:12]} <= set(SHAPES) | set(COLORS) | set(PAIRS)


def test_the_hard_mix_adds_counts_and_shifted_digits_to_the_mix() -> None:
    from collections import Counter

    train = build_mix_hard("train", limit=6)
    asked = Counter(i["question"] for i in train)
    # the mix (three questions per one-object scene, counts, digits), a second stream of counting scenes, and
    # every digit shifted two more ways
    assert asked["How many shapes are there?"] == 12 and asked["What digit is this?"] == 18
    assert all(asked[q] == 6 for q in ("What shape is in the image?", "What color is the shape?", "Describe the image."))
    digits = [i for i in train if i["question"] == "What digit is this?"]
    plain, shifted = digits[:6], digits[6:]
    assert [i["label"] for i in shifted] == [i["label"] for i in plain] * 2
    assert not any(torch.equal(a["signal"], b["signal"]) for a, b in zip(plain * 2, shifted))
    counts = [i for i in train if i["question"] == "How many shapes are there?"]
    assert not any(torch.equal(a["signal"], b["signal"]) for a, b in zip(counts[:6], counts[6:]))
    # validation is the plain mix: figures stay comparable
    val = build_mix_hard("val", limit=4)
    assert [i["caption"] for i in val] == [i["caption"] for i in build_mix("val", limit=4)]
    with pytest.raises(ValueError, match="no test_heldout split"):
        build_mix_hard("test_heldout", limit=2)


def test_the_counting_mix_adds_streams_of_counting_scenes_to_the_hard_mix() -> None:
    from collections import Counter

    from anymal_plugin_image.data import EXTRA_COUNT_STREAMS

    hard, train = build_mix_hard("train", limit=4), build_mix_counts("train", limit=4)
    assert [i["caption"] for i in train[:len(hard)]] == [i["caption"] for i in hard]
    added = train[len(hard):]
    assert len(added) == 4 * EXTRA_COUNT_STREAMS and {i["question"] for i in added} == {"How many shapes are there?"}
    counts = [i["signal"] for i in train if i["question"] == "How many shapes are there?"]
    assert Counter(i["label"] for i in train if i["question"] == "How many shapes are there?") == \
        Counter({w: 2 + EXTRA_COUNT_STREAMS for w in ("one", "two", "three", "four")})  # balanced in every stream
    assert not any(torch.equal(a, b) for k, a in enumerate(counts) for b in counts[k + 1:])  # new scenes, no repeats
    assert [i["caption"] for i in build_mix_counts("val", limit=3)] == [i["caption"] for i in build_mix("val", limit=3)]


def test_the_many_counts_set_draws_new_counting_scenes_per_stream_and_keeps_the_counts_evaluation_splits() -> None:
    from collections import Counter

    from anymal_plugin_image.data import COUNT_STREAMS

    train = build_counts_many("train", limit=4)
    assert len(train) == 4 * COUNT_STREAMS and {i["question"] for i in train} == {"How many shapes are there?"}
    assert [i["caption"] for i in train[:4]] == [i["caption"] for i in build_counts("train", limit=4)]
    assert Counter(i["label"] for i in train) == Counter({w: COUNT_STREAMS for w in COUNT_WORDS})
    signals = [i["signal"] for i in train]
    assert not any(torch.equal(a, b) for k, a in enumerate(signals) for b in signals[k + 1:])
    for split in ("val", "test"):
        assert [i["description"] for i in build_counts_many(split, limit=3)] == \
            [i["description"] for i in build_counts(split, limit=3)]


def test_captions_name_their_label_and_splits_are_deterministic_and_disjoint() -> None:
    train = build_shapes("train", limit=9)
    assert all(shape_from_text(item["caption"]) == item["label"] for item in train)
    again = build_shapes("train", limit=9)
    assert all(torch.equal(a["signal"], b["signal"]) for a, b in zip(train, again))
    val = build_shapes("val", limit=9)
    assert not any(torch.equal(a["signal"], b["signal"]) for a in train for b in val)
    other_seed = build_shapes("train", seed=1, limit=9)
    assert not torch.equal(train[0]["signal"], other_seed[0]["signal"])
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        build_shapes("dev")


def test_counts_are_balanced_and_read_back() -> None:
    items = build_counts("val", limit=8)
    assert [item["label"] for item in items] == list(COUNT_WORDS) * 2
    assert all(count_from_text(item["caption"]) == item["label"] for item in items)


def test_scenes_draw_what_their_caption_says() -> None:
    import numpy as np

    scene = Scene((Shape("square", "blue", 0.5, 0.5, 0.4),), 100, 80, ((200, 200, 200), (200, 200, 200)), 0.0, None)
    pixels = np.asarray(draw_scene(scene))
    assert pixels.shape == (80, 100, 3)
    r, g, b = pixels[40, 50].astype(int)
    assert b > 150 and r < 100 and g < 130  # blue in the middle
    assert tuple(pixels[2, 2]) == (200, 200, 200)  # background in the corner
    many = random_scene(random.Random(0), 4, SEEN_PAIRS)
    assert len(many.objects) == 4 and many.caption().startswith("There are four shapes: ")


def test_digits_come_from_scikit_learn_with_their_labels() -> None:
    items = build_digits("test", limit=20)
    assert all(item["signal"].shape == (1, 3, 224, 224) for item in items)
    assert all(digit_from_text(item["caption"]) == item["label"] for item in items)
    from sklearn.datasets import load_digits

    from anymal_plugin_image.data import _digit_split

    splits = [set(_digit_split(s).tolist()) for s in ("train", "val", "test")]
    assert sum(map(len, splits)) == len(load_digits().target) == len(set().union(*splits))


@pytest.mark.parametrize(("text", "pair", "count", "digit"), [
    ("A Red circle.", "red circle", "one", None),
    ("There are 3 shapes: a red circle, ...", "red circle", "three", "3"),
    ("I see two blue squares.", "blue square", "two", "2"),
    ("The digit is seven.", None, None, "7"),
    ("A circle, maybe red.", None, None, None),
])
def test_parsers_read_answers(text: str, pair: str | None, count: str | None, digit: str | None) -> None:
    assert pair_from_text(text) == pair
    assert count_from_text(text) == count
    assert digit_from_text(text) == digit
