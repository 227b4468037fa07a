"""Prompt assembly: placeholders, padding, labels, several attachments of several modalities."""

import numpy as np
import pytest
import torch

from anymal_host import Attachment, ModalityAdapter
from anymal_host.prompt import IGNORE_INDEX, assemble

from .conftest import toy_config


def fixed_tokens(n: int, hidden: int, value: float):
    return torch.full((n, hidden), value)


def encode_as_constants(attachments):
    # attachment i becomes (i + 2) tokens filled with 100 + i, easy to find in the embeddings
    return [fixed_tokens(i + 2, 32, 100.0 + i) for i, _ in enumerate(attachments)]


def test_placeholders_are_replaced_by_projected_tokens_in_order(tiny):
    conversation = [{"role": "user", "content": [
        {"type": "text", "text": "first"}, {"type": "attachment", "source": "a", "modality": "toy"},
        {"type": "text", "text": "then"}, {"type": "toy", "toy": "b"}]}]
    batch = assemble(tiny, [conversation], encode_as_constants)
    row = batch.inputs_embeds[0]
    first = (row == 100.0).all(-1).nonzero().flatten()
    second = (row == 101.0).all(-1).nonzero().flatten()
    assert len(first) == 2 and len(second) == 3
    assert first.max() < second.min()
    # the text around the attachments is the template's, tokenized by the LLM
    text = tiny.tokenizer.apply_chat_template([{"role": "user", "content": "first\nX\nthen\nY"}], tokenize=False,
                                              add_generation_prompt=True)
    before = text.split("X")[0]
    ids = tiny.tokenizer(before, add_special_tokens=False)["input_ids"]
    assert torch.allclose(row[: len(ids)], tiny.embed(torch.tensor([ids]))[0])
    assert batch.labels is None


def test_generation_batches_are_left_padded(tiny):
    short = [{"role": "user", "content": "hi"}]
    long = [{"role": "user", "content": "what is the person doing on the stairs"}]
    batch = assemble(tiny, [short, long], encode_as_constants)
    mask = batch.attention_mask
    assert mask.shape[0] == 2 and mask[1].all() and not mask[0].all()
    assert mask[0, -1] == 1 and mask[0, 0] == 0  # left padding: real tokens at the end
    assert (batch.inputs_embeds[0][mask[0] == 0] == 0).all()


def test_training_labels_cover_only_the_response(tiny):
    conversation = [
        {"role": "user", "content": [{"type": "toy", "toy": "x"}, {"type": "text", "text": "describe this recording"}]},
        {"role": "assistant", "content": "the person is walking"},
    ]
    batch = assemble(tiny, [conversation, conversation[:1] + [{"role": "assistant", "content": "a wave"}]],
                     encode_as_constants, train=True)
    labels = batch.labels[0]
    labelled = labels[labels != IGNORE_INDEX]
    assert tiny.tokenizer.decode(labelled) == "the person is walking<|im_end|>\n"
    # right padding for training, and padding never labelled
    assert batch.attention_mask[1, 0] == 1
    assert (batch.labels[batch.attention_mask == 0] == IGNORE_INDEX).all()
    # attachment tokens never labelled
    attachment_rows = (batch.inputs_embeds[0] == 100.0).all(-1)
    assert (labels[attachment_rows] == IGNORE_INDEX).all()


def test_training_conversation_must_end_with_answer(tiny):
    with pytest.raises(ValueError, match="must end with the assistant's answer"):
        assemble(tiny, [[{"role": "user", "content": "hi"}]], encode_as_constants, train=True)


def test_bad_content_part_is_explained(tiny):
    with pytest.raises(ValueError, match="unknown content part type 'smell'"):
        assemble(tiny, [[{"role": "user", "content": [{"type": "smell", "aroma": 1}]}]], encode_as_constants)


def test_wrongly_sized_attachment_tokens_are_explained(tiny):
    with pytest.raises(ValueError, match="the adapter was built for another LLM"):
        assemble(tiny, [[{"role": "user", "content": [{"type": "toy", "toy": "x"}]}]], lambda a: [torch.zeros(3, 99)])


def test_several_modalities_in_one_prompt(tiny, registry):
    from anymal_host import AnymalHost
    from .toy_plugin import ToyModality

    class OtherToy(ToyModality):
        name = "othertoy"
        file_extensions = (".otoy",)

    from anymal_host import hookimpl

    class OtherPlugin:
        @hookimpl
        def register_modalities(self, register):
            register(OtherToy())

    registry.add_plugin(OtherPlugin(), name="other")
    host = AnymalHost(tiny, registry=registry)
    torch.manual_seed(0)
    host.add_adapter(ModalityAdapter.from_config(toy_config(tiny, num_tokens=3), registry))
    other = toy_config(tiny, num_tokens=5)
    other.modality, other.name = "othertoy", "other-adapter"
    host.add_adapter(ModalityAdapter.from_config(other, registry))
    signal = ToyModality().example_input()
    conversation = [{"role": "user", "content": [Attachment(signal, modality="toy"), Attachment(signal, modality="othertoy"),
                                                 Attachment(signal * 2, modality="toy"), "compare them"]}]
    batch = host.embed([conversation])
    text_only = host.embed([[{"role": "user", "content": "compare them"}]])
    # 3 + 5 + 3 attachment tokens, plus the newlines that separate the parts
    newline = len(tiny.tokenizer("\n", add_special_tokens=False)["input_ids"])
    assert batch.inputs_embeds.shape[1] == text_only.inputs_embeds.shape[1] + 11 + 3 * newline
