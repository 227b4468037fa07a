from __future__ import annotations

import pytest

from adapters_hub.config import AdapterConfig, EncoderRef, LLMRef, ProjectorSpec
from anymal_host import AnymalHost, LLM, ModalityAdapter, Registry

from . import toy_plugin
from anymal_host.testing import tiny_llm


@pytest.fixture(scope="session", autouse=True)
def _chat_log_outside_the_home(tmp_path_factory):
    """`anymal chat` logs every exchange; tests (and the subprocesses they start) log into a throwaway file,
    never a user's $ANYMAL_HOME/logs.db. Tests that read the log point ANYMAL_LOGS_PATH at their own file."""
    import os

    previous = os.environ.get("ANYMAL_LOGS_PATH")
    os.environ["ANYMAL_LOGS_PATH"] = str(tmp_path_factory.mktemp("chat-log") / "logs.db")
    yield
    if previous is None:
        os.environ.pop("ANYMAL_LOGS_PATH", None)
    else:
        os.environ["ANYMAL_LOGS_PATH"] = previous


@pytest.fixture(scope="session")
def tiny() -> LLM:
    """A 2-layer LLaMA with hidden size 32 and a BPE tokenizer trained on a few sentences."""
    return tiny_llm()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny):
    """The tiny LLaMA saved to a folder, for `--llm DIR` and anything that loads an LLM by path."""
    folder = tmp_path_factory.mktemp("tiny-llm")
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def registry(monkeypatch) -> Registry:
    """The default plugins plus the toy test plugin; installed entry-point plugins are left out."""
    monkeypatch.setenv("ANYMAL_LOAD_PLUGINS", "")
    return Registry.from_environment(extra_plugins=[toy_plugin])


def toy_config(llm: LLM, projector: str = "meanpool", num_tokens: int = 4, **options) -> AdapterConfig:
    return AdapterConfig(
        name=f"toy-{projector}", modality="toy",
        encoder=EncoderRef(name="toy-linear", config={"width": 8}),
        projector=ProjectorSpec(type=projector, in_dim=8, out_dim=llm.hidden_size, options=options),
        llm=LLMRef(**{k: v for k, v in llm.describe().items()}), num_tokens=num_tokens,
        # as training records it (a per-step projector's count is set from the example by token_facts)
        token_mode="per_step" if projector in ("linear", "mlp") else "fixed",
    )


@pytest.fixture
def toy_host(tiny, registry) -> AnymalHost:
    import torch

    torch.manual_seed(0)
    host = AnymalHost(tiny, registry=registry)
    host.add_adapter(ModalityAdapter.from_config(toy_config(tiny), registry))
    return host


@pytest.fixture(scope="session")
def default_llm() -> LLM:
    """The real embedded default LLM (SmolLM2-135M-Instruct), converted once into $ANYMAL_HOME."""
    return LLM.load(progress=False)
