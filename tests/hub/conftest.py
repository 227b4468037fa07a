"""Fixtures for the adapter-package and hub tests: a tiny config, its tensors, a saved package, the host facts
the checks take, a fake Hugging Face Hub on 127.0.0.1, and hubs that give no answer (a closed port, a port
that resets every connection and counts them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adapters_hub import AdapterConfig, EncoderRef, LLMRef, ProjectorSpec, save_adapter_package, tensor_specs

from .fake_hf_server import FakeHub, ResettingEndpoint

LLM_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
HIDDEN = 16
FINGERPRINT = "f" * 64


def make_config(name: str = "imu-small", modality: str = "imu", **changes) -> AdapterConfig:
    config = AdapterConfig(
        name=name, modality=modality,
        encoder=EncoderRef(name="imu-conv", config={"channels": 6, "width": 8}),
        projector=ProjectorSpec(type="mlp", in_dim=8, out_dim=HIDDEN, options={"hidden_dim": 12}),
        llm=LLMRef(name=LLM_NAME, hidden_size=HIDDEN, fingerprint=FINGERPRINT, revision="main"),
        num_tokens=4, preprocessing={"sample_rate": 50}, metrics={"activity_accuracy": 0.91},
        description="Test adapter.",
    )
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def make_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "encoder.conv.weight": torch.randn(8, 6, 3, generator=g),
        "encoder.conv.bias": torch.randn(8, generator=g),
        "encoder.steps": torch.arange(5, dtype=torch.int64),
        "projector.fc1.weight": torch.randn(12, 8, generator=g).to(torch.bfloat16),
        "projector.fc2.weight": torch.randn(HIDDEN, 12, generator=g),
        "projector.fc2.bias": torch.randn(HIDDEN, generator=g).half(),
    }


@pytest.fixture
def config() -> AdapterConfig:
    return make_config()


@pytest.fixture
def tensors() -> dict[str, torch.Tensor]:
    return make_tensors()


@pytest.fixture
def expected(tensors) -> dict:
    """What the host would compute from an untrained adapter built from the config."""
    return tensor_specs(tensors)


@pytest.fixture
def host_facts(expected) -> dict:
    """The arguments the host passes to check_package / load_adapter_package."""
    return {"installed_modalities": {"imu", "image"}, "host_hidden_size": HIDDEN, "host_fingerprint": FINGERPRINT,
            "host_llm_name": LLM_NAME, "expected_tensors": expected}


@pytest.fixture
def package(tmp_path, config, tensors) -> Path:
    folder = tmp_path / "pkg"
    save_adapter_package(folder, config, tensors)
    return folder


@pytest.fixture
def fake_hub():
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # keeps test output readable; does not change what the client sends
    hub = FakeHub().start()
    yield hub
    hub.stop()


@pytest.fixture
def resetting_endpoint():
    """A "hub" that resets every connection, counting them (see ResettingEndpoint)."""
    endpoint = ResettingEndpoint().start()
    yield endpoint
    endpoint.stop()


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens: connections are refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
