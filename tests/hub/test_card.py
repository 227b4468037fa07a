"""Model cards: hub-grade front matter (as peft and timm write it, read back with huggingface_hub's own parser),
a usage snippet naming the repo a package is published to, and no local paths: a published card must not show
the author's folders. Cards written by earlier versions (the plugins bundle some) keep being read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from adapters_hub import read_package_config
from adapters_hub.card import (
    EVALUATION_HEADING, UNPUBLISHED, CardTarget, pipeline_tag, render_model_card, retarget_card, split_front_matter,
    strip_local_paths, usage_section,
)

from .conftest import FINGERPRINT, LLM_NAME, make_config

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = sorted(ROOT.glob("plugins/*/src/*/adapters/*/README.md"))
EVAL_BLOCK = f"""{EVALUATION_HEADING}

```bash
anymal eval --data imu:hapt --adapter /home/alice/runs/imu/best --update-card
anymal eval --data imu:hapt --split heldout --adapter runs/imu/best --update-card --card-prefix heldout
```
"""


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


def _card(config, **kwargs) -> ModelCard:
    return ModelCard(render_model_card(config, **kwargs))


def test_front_matter_parses_with_huggingface_hub_and_has_every_hub_key():
    config = make_config(description="Stage 1 alignment on imu:hapt: 150 steps, batch 16, lr 0.001, seed 0.",
                         metrics={"activity_accuracy": 0.91, "text_only_activity_accuracy": 0.1,
                                  "heldout_activity_accuracy": 0.8, "heldout_n_test": 40, "step": 150,
                                  "val_loss": 1.2})
    data = _card(config, readme_extra=EVAL_BLOCK).data
    assert data.library_name == "anymal"
    assert data.pipeline_tag == "any-to-any"
    assert data.base_model == LLM_NAME and data.to_dict()["base_model_relation"] == "adapter"
    assert {"anymal", "anymal-imu", "anymal-adapter", "imu", "anymal-modality-imu",
            f"base_model:adapter:{LLM_NAME}"} <= set(data.tags)
    assert data.datasets == ["imu:hapt"]
    assert data.language == ["en"] and data.license == "apache-2.0"
    assert data.to_dict()["anymal"]["llm_fingerprint"] == FINGERPRINT
    results = {(r.dataset_name, r.dataset_split, r.metric_name): (r.metric_type, r.metric_value)
               for r in data.eval_results}
    assert results == {
        ("imu:hapt", "test", "activity_accuracy"): ("accuracy", 0.91),
        ("imu:hapt", "test", "text_only_activity_accuracy"): ("accuracy", 0.1),
        ("imu:hapt", "heldout", "heldout_activity_accuracy"): ("accuracy", 0.8),
    }  # the step, item counts and training-time validation figures are not evaluation figures
    assert data.model_name == config.name and {r.task_type for r in data.eval_results} == {"any-to-any"}


@pytest.mark.parametrize("modality, tag", [("image", "image-text-to-text"), ("audio", "audio-text-to-text"),
                                           ("video", "video-text-to-text"), ("imu", "any-to-any"),
                                           ("pulse", "any-to-any")])
def test_pipeline_tag_by_modality(modality, tag):
    assert pipeline_tag(modality) == tag
    assert _card(make_config(modality=modality)).data.pipeline_tag == tag


def test_without_datasets_or_figures_the_keys_are_left_out():
    data = _card(make_config(description="Hand-made.", metrics={})).data.to_dict()
    assert "datasets" not in data and "model-index" not in data


def test_a_local_llm_is_no_base_model():
    config = make_config()
    config.llm.name = "/models/my-llm"
    data = _card(config).data.to_dict()
    assert "base_model" not in data and "base_model_relation" not in data
    assert not [t for t in data["tags"] if t.startswith("base_model:")]


def _use_section(card: str) -> str:
    return re.search(r"^## Use\n(.*?)(?=^## )", card, re.S | re.M).group(1)


def _only_published_commands(section: str) -> None:
    assert "make " not in section and "plugins/" not in section and "runs/" not in section
    assert not re.search(r"(?<![\w:/])/[A-Za-z]", section), section  # no absolute path
    assert "~/" not in section


def test_an_unpublished_card_says_where_the_repo_goes():
    section = _use_section(render_model_card(make_config()))
    assert 'host.load_adapter("ORG/NAME")' in section and "anymal hub push FOLDER ORG/NAME" in section
    assert "pip install anymal anymal-plugin-imu" in section
    _only_published_commands(section)


@pytest.mark.parametrize("target, ref", [
    (CardTarget.hugging_face("lab/imu-small"), "lab/imu-small"),
    (CardTarget.hugging_face("lab/imu-small", "dev"), "lab/imu-small@dev"),
    (CardTarget.folder_hub("lab/imu-small"), "file://HUB_ROOT/lab/imu-small"),
])
def test_retargeting_names_the_repo_and_keeps_the_rest(target, ref):
    config = make_config(metrics={"activity_accuracy": 0.91})
    card = render_model_card(config, readme_extra=EVAL_BLOCK)
    published = retarget_card(card, config, target)
    section = _use_section(published)
    assert f'host.load_adapter("{ref}")' in section and f"--adapter {ref} " in section
    assert "ORG/NAME" not in published
    _only_published_commands(section)
    assert published.split("## Metrics", 1)[1] == card.split("## Metrics", 1)[1]  # figures and commands kept
    assert ModelCard(published).data.to_dict() == ModelCard(card).data.to_dict()
    assert retarget_card(published, config, target) == published  # publishing twice changes nothing more


def test_retargeting_keeps_the_authors_keys_and_tags_and_replaces_what_the_config_decides():
    config = make_config()
    card = ("---\nlicense: mit\ntags: [my-tag]\nlibrary_name: something-else\ndatasets: [org/my-data]\n"
            "anymal: {modality: stale}\n---\n# Mine\n\nHand-written, no Use section.\n")
    published = retarget_card(card, config, CardTarget.hugging_face("lab/imu"))
    data, body = split_front_matter(published)
    assert data["license"] == "mit" and data["datasets"] == ["org/my-data"]
    assert data["tags"][0] == "my-tag" and "anymal-imu" in data["tags"]
    assert data["library_name"] == "anymal" and data["anymal"]["modality"] == "imu"
    assert body.strip() == "# Mine\n\nHand-written, no Use section."


def test_usage_section_of_a_lora_free_config_is_plain_markdown():
    section = usage_section(make_config(modality="audio"), UNPUBLISHED)
    assert section.startswith("## Use\n") and section.count("```") == 4
    assert "`FILE` is an audio input" in section


@pytest.mark.parametrize("readme", BUNDLED, ids=[p.parent.name for p in BUNDLED])
def test_bundled_cards_are_read_and_published_without_losing_anything(readme):
    """The cards bundled in the plugins were written by an earlier card writer: they still parse, the figures and
    the commands that measured them survive publishing (anymal eval --update-card reads that block back), and
    the published card is hub-grade."""
    from anymal_host.card_metrics import _earlier_commands

    config = read_package_config(readme.parent)
    text = readme.read_text(encoding="utf-8")
    published = retarget_card(text, config, CardTarget.hugging_face(f"anymal-project/{config.name}"))
    data = ModelCard(published).data
    assert data.library_name == "anymal" and data.base_model == config.llm.name
    assert data.pipeline_tag == pipeline_tag(config.modality) and data.datasets
    assert data.eval_results and all(r.metric_name in config.metrics for r in data.eval_results)
    assert published.split(EVALUATION_HEADING, 1)[1] == text.split(EVALUATION_HEADING, 1)[1]
    assert f'host.load_adapter("anymal-project/{config.name}")' in published
    _only_published_commands(_use_section(published))
    assert _earlier_commands(readme)  # the card on disk is untouched and still read


def test_figures_of_several_evaluations_go_to_their_data_sets():
    """Metric names carry the --card-prefix of the evaluation that measured them; the longest prefix wins
    (shapes_heldout_pairs_* is not a shapes_* figure)."""
    config = make_config(modality="image", metrics={"shapes_shape_accuracy": 1.0,
                                                   "shapes_heldout_pairs_shape_accuracy": 0.5})
    block = (f"{EVALUATION_HEADING}\n\n```bash\nanymal eval --data image:shapes --update-card --card-prefix shapes\n"
             "anymal eval --data image:shapes --split test_heldout --update-card "
             "--card-prefix shapes_heldout_pairs\n```\n")
    results = {r.metric_name: r.dataset_split for r in _card(config, readme_extra=block).data.eval_results}
    assert results == {"shapes_shape_accuracy": "test", "shapes_heldout_pairs_shape_accuracy": "test_heldout"}
