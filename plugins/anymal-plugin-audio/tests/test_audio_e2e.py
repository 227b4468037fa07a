"""End to end with the real default LLM and the bundled adapter: the shipped clips (8 kHz WAVs, so load
resamples them), asked what the adapter was trained to answer; "seven" is spoken in a held-out test voice."""

from __future__ import annotations

import pytest

from anymal_plugin_audio.data import sound_label, speech_label
from anymal_plugin_audio.modality import EXAMPLES_DIR
from anymal_plugin_audio.plugin import ADAPTERS_DIR

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host():
    from anymal_host import LLM, AnymalHost, Registry

    import anymal_plugin_audio.plugin as plugin

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANYMAL_LOAD_PLUGINS", "")  # the built-in projectors + this plugin, whatever else is installed
        registry = Registry.from_environment(extra_plugins=[plugin])
    return AnymalHost(LLM.load(progress=False), registry=registry)


def test_an_adapter_is_bundled_with_its_figures():
    from adapters_hub import read_package_config

    folders = [p.parent for p in ADAPTERS_DIR.glob("*/anymal_adapter.json")]
    assert [f.name for f in folders] == ["audio-perceiver"], "the plugin wheel must ship its trained adapter"
    config = read_package_config(folders[0])
    assert config.encoder.weights_included is False and config.token_mode == "fixed" and config.num_tokens == 32
    for prefix, task in (("digits", "digit"), ("speech", "word"), ("sounds", "sound")):
        assert f"{prefix}_{task}_accuracy" in config.metrics, prefix
        assert f"{prefix}_text_only_{task}_accuracy" in config.metrics, prefix


@pytest.mark.parametrize(("clip", "question", "parse", "expected"), [
    ("seven.wav", "What number is spoken?", speech_label, "seven"),
    ("rising_chirp.wav", "Is the pitch rising or falling?", sound_label, "rising chirp"),
    ("high_tone.wav", "Describe the sound.", sound_label, "high tone"),
])
def test_the_bundled_adapter_answers_about_the_examples(host, clip, question, parse, expected):
    answer = host.chat(question, attachments=[str(EXAMPLES_DIR / clip)], max_new_tokens=16)
    assert host.active_adapter_name("audio") == "audio-perceiver"
    assert parse(answer) == expected, answer
