"""The safety hooks run for every request: a refusal at any of the four checks ends that request with its
reason (and only that request of a batch), a broken check refuses rather than lets through, and the built-in
word-list and signal checks are off until configured."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from anymal_host import Attachment, ContentRefusedError, hookimpl
from anymal_host.default_plugins import safety as builtin
from anymal_host.safety import SAFETY_HOOKS, run_check


def write_toy(path, rows=12, constant=False):
    t = np.arange(rows) / 3
    values = np.ones((rows, 2)) if constant else np.stack([np.sin(t), np.cos(t)], 1)
    np.savetxt(path, values)
    return str(path)


class Recorder:
    """A safety plugin that records what it is shown and refuses what it is told to."""

    def __init__(self, refuse: dict[str, str] | None = None, raise_in: str | None = None) -> None:
        self.seen: dict[str, list] = {hook: [] for hook in SAFETY_HOOKS}
        self.refuse = refuse or {}
        self.raise_in = raise_in

    def _verdict(self, hook: str, shown: object, text: str = "") -> str | None:
        self.seen[hook].append(shown)
        if hook == self.raise_in:
            raise RuntimeError("the classifier is unreachable")
        trigger = self.refuse.get(hook)  # refuse when this substring is in the text ("" refuses everything)
        return f"{hook} refused" if trigger is not None and trigger in text else None

    @hookimpl
    def check_input_text(self, text):
        return self._verdict("check_input_text", text, text)

    @hookimpl
    def check_input_signal(self, modality, signal):
        return self._verdict("check_input_signal", (modality, tuple(signal.shape)), "signal")

    @hookimpl
    def check_output_text(self, text):
        return self._verdict("check_output_text", text, "always")

    @hookimpl
    def check_signals_and_output(self, signals, text):
        return self._verdict("check_signals_and_output", [m for m, _ in signals], "always")


@pytest.fixture
def recorder(toy_host):
    def add(**kwargs) -> Recorder:
        plugin = Recorder(**kwargs)
        toy_host.registry.add_plugin(plugin, name="recorder")
        return plugin

    return add


def test_every_check_sees_its_part_of_the_request(toy_host, recorder, tmp_path):
    plugin = recorder()
    signal = write_toy(tmp_path / "a.toy")
    answer = toy_host.chat("describe this recording", attachments=[signal], system="be brief", max_new_tokens=4)
    assert isinstance(answer, str)
    assert plugin.seen["check_input_text"] == ["be brief\ndescribe this recording"]
    assert plugin.seen["check_input_signal"] == [("toy", (12, 2))]  # preprocessed, one item
    assert plugin.seen["check_output_text"] == [answer]
    assert plugin.seen["check_signals_and_output"] == [["toy"]]


@pytest.mark.parametrize("hook", SAFETY_HOOKS)
def test_a_refusal_at_any_check_ends_the_request_with_its_reason(toy_host, recorder, tmp_path, hook):
    plugin = recorder(refuse={hook: ""})  # refuses whatever it is shown
    with pytest.raises(ContentRefusedError, match=f"refused by {hook} of plugin 'recorder': {hook} refused") as info:
        toy_host.chat("describe this recording", attachments=[write_toy(tmp_path / "a.toy")], max_new_tokens=4)
    assert info.value.refusal.check == hook and info.value.refusal.plugin == "recorder"
    # nothing after the refusing check ran
    later = SAFETY_HOOKS[SAFETY_HOOKS.index(hook) + 1:]
    assert all(not plugin.seen[h] for h in later)


def test_only_the_refused_conversation_of_a_batch_is_refused(toy_host, recorder):
    recorder(refuse={"check_input_text": "forbidden"})
    answers = toy_host.respond([[{"role": "user", "content": "a forbidden question"}],
                                [{"role": "user", "content": "a fine question"}]], max_new_tokens=3)
    assert answers[0].finish_reason == "content_filter" and answers[0].text == ""
    assert answers[0].refusal.reason == "check_input_text refused"
    assert answers[1].finish_reason in ("stop", "length") and answers[1].refusal is None
    alone = toy_host.respond([[{"role": "user", "content": "a fine question"}]], max_new_tokens=3)
    assert alone == [answers[1]]  # the refused row changed nothing for the other


def test_a_check_that_raises_refuses_the_request(toy_host, recorder):
    recorder(raise_in="check_output_text")
    with pytest.raises(ContentRefusedError, match="check failed .RuntimeError: the classifier is unreachable."):
        toy_host.chat("hello", max_new_tokens=2)


def test_the_host_answers_exactly_as_before_without_safety_plugins(toy_host, tmp_path):
    signal = write_toy(tmp_path / "a.toy")
    conversation = [{"role": "user", "content": [Attachment(signal), "describe this recording"]}]
    with torch.inference_mode():
        batch = toy_host.embed([conversation])
        expected = toy_host.llm.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=5)
    assert toy_host.generate([conversation], max_new_tokens=5) == expected


# ----- the built-in checks ------------------------------------------------------------------------------------


def test_the_built_in_checks_are_off_until_configured(toy_host, tmp_path, monkeypatch):
    monkeypatch.delenv(builtin.WORDS_ENV, raising=False)
    monkeypatch.delenv(builtin.SIGNALS_ENV, raising=False)
    flat = write_toy(tmp_path / "flat.toy", constant=True)
    assert isinstance(toy_host.chat("say bomb", attachments=[flat], max_new_tokens=2), str)


def test_the_word_list_refuses_requests_and_answers(toy_host, tmp_path, monkeypatch):
    words = tmp_path / "blocked.txt"
    words.write_text("# terms this deployment refuses\nbomb\nnerve   agent  # a phrase\n", encoding="utf-8")
    monkeypatch.setenv(builtin.WORDS_ENV, str(words))
    with pytest.raises(ContentRefusedError, match="the request contains the blocked term 'bomb'"):
        toy_host.chat("How do I build a BOMB?", max_new_tokens=2)
    with pytest.raises(ContentRefusedError, match="blocked term 'nerve   agent'"):
        toy_host.chat("what is a nerve\n agent", max_new_tokens=2)
    assert isinstance(toy_host.chat("the bombardier beetle", max_new_tokens=2), str)  # whole words only
    assert builtin.check_output_text("It is a bomb.").startswith("the answer contains the blocked term 'bomb'")
    words.write_text("beetle\n", encoding="utf-8")  # edited while serving: read again
    with pytest.raises(ContentRefusedError, match="'beetle'"):
        toy_host.chat("the bombardier beetle", max_new_tokens=2)


def test_a_missing_word_list_refuses_with_the_fix(toy_host, tmp_path, monkeypatch):
    monkeypatch.setenv(builtin.WORDS_ENV, str(tmp_path / "missing.txt"))
    with pytest.raises(ContentRefusedError, match="ANYMAL_SAFETY_WORDS=.*cannot be read.*unset it to turn the check"):
        toy_host.chat("hello", max_new_tokens=2)


def test_the_signal_check_refuses_what_shows_nothing(toy_host, tmp_path, monkeypatch):
    monkeypatch.setenv(builtin.SIGNALS_ENV, "1")
    with pytest.raises(ContentRefusedError, match="the toy attachment is constant"):
        toy_host.chat("describe", attachments=[write_toy(tmp_path / "flat.toy", constant=True)], max_new_tokens=2)
    assert isinstance(toy_host.chat("describe", attachments=[write_toy(tmp_path / "ok.toy")], max_new_tokens=2), str)
    assert "NaN" in builtin.check_input_signal("toy", torch.tensor([[float("nan"), 1.0]]))
    assert "beyond" in builtin.check_input_signal("toy", torch.tensor([[1e5, 1.0]]))
    assert "empty" in builtin.check_input_signal("toy", torch.zeros(0, 2))


def test_run_check_without_implementations_lets_everything_through(registry):
    registry.pm.unregister(name="anymal_host.default_plugins.safety")
    assert run_check(registry, "check_input_text", text="anything") is None
    assert sys.modules["anymal_host.default_plugins.safety"] is builtin
