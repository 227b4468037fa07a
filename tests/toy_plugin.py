"""A third-party-style plugin defined in the tests: a new modality (``toy``: a text file of numbers, one
step per line, two channels) and a new projector type (``meanpool``). The host has no code for either."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from anymal_host import DatasetSpec, Encoder, InvalidSignalError, Modality, SignalSpec, hookimpl


class ToyEncoder(Encoder):
    #: The toy plugin ships no trained encoder: packages must carry its weights.
    pretrained_weights = False

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.feature_dim = width
        self.proj = nn.Linear(2, width)

    def forward(self, signals: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Padded steps are exactly zero (the conformance kit's rule 'padded-zeros').
        return torch.tanh(self.proj(signals)) * mask.unsqueeze(-1).to(signals.dtype), mask


class ToyModality(Modality):
    name = "toy"
    file_extensions = (".toy",)
    media_types = ("application/x-toy",)
    signal_spec = SignalSpec(sample_rate=10, channels=2, description="two channels, one step per line")
    description = "A test modality: lines of two numbers."

    def load(self, source: Any, **options: Any) -> torch.Tensor:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise InvalidSignalError(f"toy file {path} does not exist or is not a file: pass a .toy file")
            source = path.read_bytes()
        try:
            if isinstance(source, bytes):
                source = np.loadtxt(io.StringIO(source.decode("utf-8")), dtype=np.float32, ndmin=2)
            array = torch.as_tensor(np.asarray(source, dtype=np.float32))
        except (UnicodeDecodeError, TypeError, ValueError) as exc:
            raise InvalidSignalError(f"toy data must be lines of two numbers ({exc}): fix the file") from exc
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
            raise InvalidSignalError(f"toy signals have shape [T >= 1, 2], got {tuple(array.shape)}")
        if not bool(torch.isfinite(array).all()):
            raise InvalidSignalError("toy signal holds NaN or inf: fill or drop the missing values")
        return array

    def preprocess(self, signal: torch.Tensor, **options: Any) -> torch.Tensor:
        return signal * float(options.get("scale", 1.0))

    def build_encoder(self, config: Mapping[str, Any]) -> Encoder:
        return ToyEncoder(width=int(config.get("width", 8)))

    def example_input(self) -> Any:
        return np.stack([np.sin(np.arange(12) / 3), np.cos(np.arange(12) / 3)], axis=1).astype(np.float32)


class MeanPoolProjector(nn.Module):
    """Mean over real steps, then ``num_tokens`` learned linear heads."""

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int = 4) -> None:
        super().__init__()
        self.heads = nn.Linear(in_dim, out_dim * num_tokens)
        self.num_tokens, self.out_dim = num_tokens, out_dim

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = mask.unsqueeze(-1).to(features.dtype)
        pooled = (features * weights).sum(1) / weights.sum(1).clamp(min=1)
        tokens = self.heads(pooled).view(features.shape[0], self.num_tokens, self.out_dim)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool)


def _toy_dataset(split: str, **options: Any) -> list[dict[str, Any]]:
    generator = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
    items = []
    for i in range(8):
        rising = i % 2 == 0
        base = torch.linspace(0, 1, 12) if rising else torch.linspace(1, 0, 12)
        signal = torch.stack([base, base], 1) + 0.01 * torch.randn(12, 2, generator=generator)
        items.append({"signal": signal, "caption": "It is rising." if rising else "It is falling.", "label": "rising" if rising else "falling"})
    return items


def _toy_levels(split: str, **options: Any) -> list[dict[str, Any]]:
    """Constant high or low signals: separable by a mean-pooled feature (ramps are not: same mean)."""
    generator = torch.Generator().manual_seed({"train": 10, "val": 11, "test": 12}[split])
    items = []
    for i in range(16):
        high = i % 2 == 0
        signal = torch.full((12, 2), 1.0 if high else -1.0) + 0.05 * torch.randn(12, 2, generator=generator)
        # "source": the signal as a .toy file's bytes, so an instruction set can be written from this data set
        source = "".join(f"{a:.6f} {b:.6f}\n" for a, b in signal.tolist()).encode()
        items.append({"signal": signal, "caption": "It is high." if high else "It is low.", "label": "high" if high else "low",
                      "source": source, "source_suffix": ".toy"})
    return items


@hookimpl
def register_modalities(register):
    register(ToyModality())


@hookimpl
def register_projectors(register):
    register("meanpool", MeanPoolProjector)


@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="toy:ramps", modality="toy", build=_toy_dataset, description="rising and falling ramps"))
    register(DatasetSpec(name="toy:levels", modality="toy", build=_toy_levels, description="high and low levels",
                         labels=("high", "low"), info={"label_noun": "level", "signal_noun": "toy signal"}))
