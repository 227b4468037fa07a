"""AnymalHost with the tiny LLaMA and the toy test plugin: attachments end to end, routing, errors."""

import numpy as np
import pytest
import torch

from anymal_host import AdapterNotFoundError, AnymalHost, Attachment, UnknownModalityError, UnsupportedAttachmentError


def write_toy(path, rows=12):
    t = np.arange(rows) / 3
    np.savetxt(path, np.stack([np.sin(t), np.cos(t)], 1))
    return path


def test_attachment_of_a_plugin_modality_goes_through_the_tiny_llm(toy_host, tmp_path):
    path = write_toy(tmp_path / "signal.toy")
    answer = toy_host.chat("describe this recording", attachments=[str(path)], max_new_tokens=5)
    assert isinstance(answer, str)
    batch = toy_host.embed([[{"role": "user", "content": [Attachment(str(path)), "describe this recording"]}]])
    adapter = toy_host.adapters["toy-meanpool"].adapter
    expected = adapter.encode([str(path)])[0]
    # the 4 meanpool tokens sit in the embedded prompt, exactly
    row = batch.inputs_embeds[0]
    hits = [i for i in range(row.shape[0] - 3) if torch.allclose(row[i:i + 4], expected)]
    assert len(hits) == 1


def test_the_answer_depends_on_the_signal(toy_host, tmp_path):
    a = toy_host.embed([[{"role": "user", "content": [Attachment(str(write_toy(tmp_path / "a.toy", 12))), "x"]}]])
    b = toy_host.embed([[{"role": "user", "content": [Attachment(np.ones((5, 2), np.float32), modality="toy"), "x"]}]])
    assert a.inputs_embeds.shape == b.inputs_embeds.shape
    assert not torch.allclose(a.inputs_embeds, b.inputs_embeds)


def test_unknown_attachment_type_names_the_plugin(toy_host, tmp_path):
    image = tmp_path / "cat.jpg"
    image.write_bytes(b"\xff\xd8\xff")
    with pytest.raises(UnsupportedAttachmentError, match="anymal-plugin-image"):
        toy_host.chat("what is this?", attachments=[str(image)])


def test_unknown_modality_is_explained(toy_host):
    with pytest.raises(UnknownModalityError, match="pip install anymal-plugin-smell"):
        toy_host.chat("hi", attachments=[Attachment([1.0], modality="smell")])


def test_modality_without_adapter_is_explained(tiny, registry, tmp_path):
    host = AnymalHost(tiny, registry=registry)
    with pytest.raises(AdapterNotFoundError, match="no adapter is loaded for modality 'toy'"):
        host.chat("hi", attachments=[str(write_toy(tmp_path / "a.toy"))])


def test_unload_and_listing(toy_host):
    assert list(toy_host.adapters) == ["toy-meanpool"]
    assert toy_host.active_adapter_name("toy") == "toy-meanpool"
    toy_host.unload_adapter("toy-meanpool")
    assert not toy_host.adapters and toy_host.active_adapter_name("toy") is None
    with pytest.raises(AdapterNotFoundError, match="no adapter named 'toy-meanpool'"):
        toy_host.unload_adapter("toy-meanpool")


def test_text_only_chat_with_tiny_llm_is_deterministic(toy_host):
    first = toy_host.chat("what is the person doing", max_new_tokens=6)
    assert first == toy_host.chat("what is the person doing", max_new_tokens=6)
