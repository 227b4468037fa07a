"""End to end with the real default LLM and the bundled adapter: the shipped examples, asked what the adapter
was trained to answer, from the CLI path (the modality is picked by the file name, the bundled adapter loads on
first use)."""

from __future__ import annotations

import pytest

from anymal_plugin_image import example_path
from anymal_plugin_image.labels import (COLOR_QUESTION, COUNT_QUESTION, DIGIT_QUESTION, SHAPE_QUESTION,
                                        color_from_text, count_from_text, digit_from_text, shape_from_text)
from anymal_plugin_image.plugin import ADAPTERS_DIR

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host():
    from anymal_host import LLM, AnymalHost, Registry

    import anymal_plugin_image.plugin as plugin

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANYMAL_LOAD_PLUGINS", "")  # the built-in projectors + this plugin, whatever else is installed
        registry = Registry.from_environment(extra_plugins=[plugin])
    return AnymalHost(LLM.load(progress=False), registry=registry)


def test_an_adapter_is_bundled_with_its_figures():
    from adapters_hub import read_package_config

    folders = [p.parent for p in ADAPTERS_DIR.glob("*/anymal_adapter.json")]
    assert [f.name for f in folders] == ["image-perceiver"], "the plugin wheel must ship its trained adapter"
    config = read_package_config(folders[0])
    assert config.encoder.weights_included is False and config.token_mode == "fixed" and config.num_tokens == 32
    # the model card states each task's accuracy beside the text-only baseline
    for prefix, task in (("shapes", "shape"), ("colors", "colour"), ("counts", "count"), ("digits", "digit"),
                         ("shapes_heldout_pairs", "shape"), ("colors_heldout_pairs", "colour")):
        assert f"{prefix}_{task}_accuracy" in config.metrics, prefix
        assert f"{prefix}_text_only_{task}_accuracy" in config.metrics, prefix


@pytest.mark.parametrize(("example", "question", "parse", "expected"), [
    ("red_circle.png", SHAPE_QUESTION, shape_from_text, "circle"),
    ("blue_triangle.png", SHAPE_QUESTION, shape_from_text, "triangle"),
    ("red_circle.png", COLOR_QUESTION, color_from_text, "red"),
    ("blue_triangle.png", COLOR_QUESTION, color_from_text, "blue"),
    ("digit_7.png", DIGIT_QUESTION, digit_from_text, "7"),
    ("three_shapes.jpg", COUNT_QUESTION, count_from_text, "three"),
])
def test_the_bundled_adapter_answers_about_the_examples(host, example, question, parse, expected):
    answer = host.chat(question, attachments=[str(example_path(example))], max_new_tokens=16)
    assert host.active_adapter_name("image") == "image-perceiver"
    assert parse(answer) == expected, answer


def test_without_the_image_the_llm_cannot_answer(host):
    """The text-only baseline of the card, on one question: the answer comes from the image, not the prompt."""
    answer = host.chat(COLOR_QUESTION, max_new_tokens=16)
    assert color_from_text(answer) != "blue", answer
