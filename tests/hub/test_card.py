"""Model cards carry no local paths: a published card must not show the author's folders."""

from __future__ import annotations

from adapters_hub.card import render_model_card, strip_local_paths

from .conftest import make_config


def test_card_strips_absolute_paths_from_every_text_it_embeds():
    config = make_config(description="Trained from /home/alice/secret-project/runs/pre/encoder.safetensors.")
    config.llm.name = "/home/alice/models/my-llama"
    card = render_model_card(config, readme_extra="Measured with `anymal eval --adapter /home/alice/runs/imu/best "
                                                   "--out ~/runs/eval`")
    assert "/home/alice" not in card and "~/runs" not in card
    assert "encoder.safetensors" in card and "--adapter best" in card and "a local LLM (my-llama)" in card
    assert "base_model:" not in card  # a local path is no Hub id


def test_urls_and_relative_paths_are_kept():
    text = "See https://huggingface.co/org/name/tree/main and runs/imu/eval and make eval-imu."
    assert strip_local_paths(text) == text
