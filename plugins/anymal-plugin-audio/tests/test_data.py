"""The generated data sets: labels read back from captions, splits by voice, lazy and deterministic items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymal_plugin_audio import AudioModality
from anymal_plugin_audio.data import (MIX_QUESTIONS, SOUND_LABELS, SOUND_SIZES, SPEECH_LABELS, SPEECH_SIZES, VOICES,
                                      build_digits, build_mix, build_sounds, build_speech, make_sound, mix_label, sound_label,
                                      speech_label)


def test_held_out_voices_never_occur_in_training():
    assert not set(VOICES["test"]) & set(VOICES["train"]) and not set(VOICES["val"]) & set(VOICES["train"])
    assert not set(VOICES["test"]) & set(VOICES["val"])


def test_speech_items_carry_their_voice_and_label(espeak):
    split = build_speech("test")
    assert len(split) == SPEECH_SIZES["test"] == 80
    items = [split[i] for i in (0, 7, 25, 79)]
    assert {item["voice"] for item in items} <= set(VOICES["test"])
    assert [item["label"] for item in items] == [SPEECH_LABELS[i % 20] for i in (0, 7, 25, 79)]
    assert all(speech_label(item["caption"]) == item["label"] for item in items)
    assert all(item["signal"].shape[1] == 1 and item["signal"].dtype == torch.float32 for item in items)


def test_an_item_is_the_same_however_the_split_is_read(espeak):
    late_first = build_speech("val")[41]["signal"]
    fresh = build_speech("val")
    _ = fresh[0]
    assert torch.equal(fresh[41]["signal"], late_first)
    assert not torch.equal(build_speech("val", seed=1)[41]["signal"], late_first)


def test_items_are_what_load_and_preprocess_give():
    modality = AudioModality()
    item = build_sounds("train")[3]
    rng = np.random.default_rng([1, 0, 0, 3])
    assert torch.equal(item["signal"], modality.preprocess(modality.load((make_sound(item["label"], rng), 16_000))))


def test_every_sound_class_reads_back_from_its_captions():
    split = build_sounds("val")
    assert len(split) == SOUND_SIZES["val"]
    assert sorted({split[i]["label"] for i in range(len(split))}) == sorted(SOUND_LABELS)
    assert all(sound_label(split[i]["caption"]) == split[i]["label"] for i in range(len(split)))


def test_the_mix_is_speech_then_sounds_each_item_with_its_own_questions(espeak):
    mix = build_mix("val")
    speech, sounds = build_speech("val"), build_sounds("val")
    assert len(mix) == len(speech) + len(sounds) == SPEECH_SIZES["val"] + SOUND_SIZES["val"]
    assert torch.equal(mix[3]["signal"], speech[3]["signal"])
    assert torch.equal(mix[len(speech) + 5]["signal"], sounds[5]["signal"]) and torch.equal(mix[-1]["signal"], sounds[-1]["signal"])
    picked = [mix[i] for i in (0, 13, len(speech), len(speech) + 3, len(speech) + 6, len(mix) - 1)]
    assert [item["questions"][0] for item in picked] == ["What number is spoken?", "What word is said?",
                                                         "Is the tone high or low?", "How many beeps are there?",
                                                         "Is the pitch rising or falling?", "Describe the sound."]
    assert {q for item in picked for q in item["questions"]} <= set(MIX_QUESTIONS)
    assert all(mix_label(item["caption"]) == item["label"] for item in picked)
    assert [item["label"] for item in mix[len(speech) - 1:len(speech) + 1]] == [SPEECH_LABELS[-1], SOUND_LABELS[0]]
    with pytest.raises(IndexError):
        mix[len(mix)]


def test_the_digits_are_the_speech_items_that_are_digits(espeak):
    digits, speech = build_digits("test"), build_speech("test")
    assert len(digits) == SPEECH_SIZES["test"] // 2
    labels = [digits[i]["label"] for i in (0, 9, 10, len(digits) - 1)]
    assert labels == ["zero", "nine", "zero", "nine"]
    assert torch.equal(digits[10]["signal"], speech[20]["signal"])  # the second round of digits, same item
    assert {digits[i]["questions"][0] for i in (0, 9)} == {"What number is spoken?"}


@pytest.mark.parametrize("text, label", [
    ("I hear two beeps.", "two beeps"), ("The number two is spoken.", "two"), ("The word down is said.", "down"),
])
def test_mix_answers_read_a_sound_before_a_word(text, label):
    assert mix_label(text) == label


@pytest.mark.parametrize("text, label", [
    ("I hear 3 beeps.", "three beeps"), ("There is 1 beep.", "one beep"), ("It is silent.", "silence"),
    ("The pitch is rising.", "rising chirp"), ("A dog barks.", None), ("A low hum.", "low tone"), ("Four beeps, then a tone", "four beeps"),
])
def test_sound_answers_are_parsed(text, label):
    assert sound_label(text) == label


def test_beeps_are_countable_and_chirps_move_the_right_way():
    rng = np.random.default_rng(0)
    for count, label in enumerate(("one beep", "two beeps", "three beeps", "four beeps"), start=1):
        clip = make_sound(label, rng)
        loud = np.abs(clip) > 0.6 * np.abs(clip).max()  # above the noise floor (20-40 dB down)
        envelope = np.convolve(loud, np.ones(160), mode="same") > 0  # 10 ms smoothing over the zero crossings
        assert np.count_nonzero(np.diff(envelope.astype(int)) == 1) == count

    def centroid(x: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(x))
        return float((spectrum * np.arange(len(spectrum))).sum() / spectrum.sum())

    for label, sign in (("rising chirp", 1), ("falling chirp", -1)):
        clip = make_sound(label, rng)
        loud = np.flatnonzero(np.abs(clip) > 0.6 * np.abs(clip).max())
        first, second = np.array_split(clip[loud[0]:loud[-1]], 2)
        assert np.sign(centroid(second) - centroid(first)) == sign


def test_unknown_splits_are_refused():
    with pytest.raises(ValueError, match="use one of train, val, test"):
        build_sounds("dev")
