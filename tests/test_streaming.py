"""Streaming an answer (`AnymalHost.stream`, `anymal chat --stream`) with the real embedded LLM: the pieces
join to exactly the answer `respond` gives, usage is counted the same, and the output checks see every prefix
before it is shown, so a blocked word stops the stream before it appears."""

from __future__ import annotations

import pytest

from anymal_host import AnymalHost, ContentRefusedError

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def host(default_llm, registry):
    return AnymalHost(default_llm, registry=registry)


def test_streamed_pieces_join_to_the_answer_respond_gives(host):
    stream = host.stream(QUESTION, max_new_tokens=24)
    pieces = list(stream)
    whole = host.respond([QUESTION], max_new_tokens=24)[0]
    assert len(pieces) > 3 and "Paris" in whole.text
    assert "".join(pieces) == whole.text == stream.answer.text
    assert stream.answer == whole  # finish reason and token counts too


def test_a_blocked_word_stops_the_stream_before_it_is_shown(host, tmp_path, monkeypatch):
    words = tmp_path / "blocked.txt"
    words.write_text("Paris\n")
    monkeypatch.setenv("ANYMAL_SAFETY_WORDS", str(words))
    shown = []
    with pytest.raises(ContentRefusedError, match="blocked term 'paris'"):
        for piece in host.stream(QUESTION, max_new_tokens=24):
            shown.append(piece)
    assert shown and "Paris" not in "".join(shown)  # the answer began, and stopped before the word


def test_a_refused_question_streams_nothing(host, tmp_path, monkeypatch):
    words = tmp_path / "blocked.txt"
    words.write_text("France\n")
    monkeypatch.setenv("ANYMAL_SAFETY_WORDS", str(words))
    with pytest.raises(ContentRefusedError, match="check_input_text"):
        host.stream(QUESTION)


def test_stopping_early_stops_generation(host):
    import threading

    stream = host.stream(QUESTION, max_new_tokens=200)
    pieces = iter(stream)
    next(pieces)
    assert any(t.name == "anymal-stream" for t in threading.enumerate())
    pieces.close()  # what a caller's `break` does once the generator is dropped
    assert not any(t.name == "anymal-stream" for t in threading.enumerate())  # generation stopped and joined
    assert stream.answer is None
