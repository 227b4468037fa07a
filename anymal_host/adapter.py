"""``ModalityAdapter``: a modality's encoder + a projector, described by an :class:`AdapterConfig`."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from adapters_hub.config import AdapterConfig
from adapters_hub.layout import weight_prefixes

from .modality import Modality
from .plugins import Registry, get_registry

__all__ = ["ModalityAdapter", "run_collated", "measure_token_mode", "TOKEN_PROBE_STEPS"]

#: Feature lengths a projector is probed with to tell ``per_step`` from ``fixed`` (the conformance kit's
#: ``check_projector`` uses the same two).
TOKEN_PROBE_STEPS = (4, 6)


def run_collated(module: nn.Module, signals: torch.Tensor, mask: torch.Tensor, *,
                 encoded: bool = False) -> list[torch.Tensor]:
    """Run an adapter (or a wrapper of it, such as DDP in training) on a collated batch; returns one
    ``[N_i, H]`` tensor of real tokens per item (padding dropped). ``encoded``: the batch holds encoder
    features already (training with a frozen encoder encodes each item once), so only the projector runs."""
    device = next(module.parameters()).device
    extra = {"encoded": True} if encoded else {}  # only when asked: other modules need not know the flag
    tokens, token_mask = module(signals.to(device), mask.to(device), **extra)
    return [t[m] for t, m in zip(tokens, token_mask)]


def measure_token_mode(projector: nn.Module, in_dim: int) -> str | None:
    """How a projector behaves, measured on random features of :data:`TOKEN_PROBE_STEPS` lengths: ``per_step``
    when it makes one token per step, ``fixed`` when it makes as many for both, None when neither holds or it
    cannot run on them. Needs no declaration from a third-party projector."""
    counts = []
    try:
        with torch.no_grad():
            for steps in TOKEN_PROBE_STEPS:
                features = torch.randn(1, steps, in_dim, generator=torch.Generator().manual_seed(steps))
                param = next(projector.parameters(), None)
                if param is not None:
                    features = features.to(device=param.device, dtype=param.dtype)
                _, token_mask = projector(features, torch.ones(1, steps, dtype=torch.bool, device=features.device))
                counts.append(int(token_mask[0].sum()))
    except Exception:  # plugin code that cannot take these lengths: the mode stays unknown
        return None
    if counts == list(TOKEN_PROBE_STEPS):
        return "per_step"
    return "fixed" if counts[0] == counts[1] else None


class ModalityAdapter(nn.Module):
    """Maps raw signals of one modality to tokens in the LLM's embedding space.

    Parameter names are ``encoder.*`` and ``projector.*``; ``adapter.safetensors`` stores the projector and,
    when ``config.encoder.weights_included``, the encoder.
    """

    def __init__(self, config: AdapterConfig, modality: Modality, encoder: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.modality = modality
        self.encoder = encoder
        self.projector = projector

    @classmethod
    def from_config(cls, config: AdapterConfig, registry: Registry | None = None) -> "ModalityAdapter":
        """Build an untrained adapter (encoder from its plugin, projector from the projector registry)."""
        registry = registry or get_registry()
        modality = registry.modality(config.modality)
        encoder = modality.build_encoder({"name": config.encoder.name, **config.encoder.config})
        feature_dim = getattr(encoder, "feature_dim", None)
        if feature_dim is not None and feature_dim != config.projector.in_dim:
            raise ValueError(f"adapter {config.name!r}: encoder gives features of width {feature_dim} but the projector "
                             f"expects {config.projector.in_dim}: set projector.in_dim to {feature_dim}")
        factory = registry.projector_factory(config.projector.type)
        projector = factory(config.projector.in_dim, config.projector.out_dim, config.num_tokens, **config.projector.options)
        return cls(config, modality, encoder, projector)

    def forward(self, signals: torch.Tensor, mask: torch.Tensor, encoded: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Collated signals ``[B, T, ...]`` + step mask ``[B, T]`` -> ``(tokens [B, N, H], token_mask [B, N])``.
        With ``encoded``, ``signals`` are encoder features ``[B, T, D]`` already and only the projector runs."""
        features, feature_mask = (signals, mask) if encoded else self.encoder(signals, mask)
        return self.projector(features, feature_mask)

    def encode(self, sources: Sequence[Any]) -> list[torch.Tensor]:
        """Raw sources -> one ``[N_i, H]`` tensor of real tokens per source (padding dropped)."""
        return run_collated(self, *self.modality.encode_sources(sources, **self.config.preprocessing))

    def encode_preprocessed(self, signals: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Already preprocessed signals (data set items) -> one ``[N_i, H]`` tensor of real tokens each."""
        return run_collated(self, *self.modality.collate(signals))

    def token_facts(self) -> tuple[str, int]:
        """``(token_mode, num_tokens)`` as the package should record them: ``("fixed", N)`` when every attachment
        becomes N tokens, ``("per_step", n)`` when the projector emits one token per encoder step (n: the count
        for the modality's example input). The mode is what :func:`measure_token_mode` measures (the same
        measurement the host checks packages with), else the projector's ``token_mode`` attribute."""
        was_training = self.training
        # eval mode and a forked RNG: measuring must not change a training run's random stream or its modules
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            self.eval()
            try:
                count = int(self.encode([self.modality.example_input()])[0].shape[0])
                mode = measure_token_mode(self.projector, self.config.projector.in_dim)
            finally:
                self.train(was_training)
        if mode is None:
            mode = getattr(self.projector, "token_mode", None)
        if mode not in ("fixed", "per_step"):
            mode = "fixed" if count == self.config.num_tokens else "per_step"
        return mode, count

    def set_trainable(self) -> None:
        """Train the projector, and the encoder only where the config says so."""
        self.projector.requires_grad_(True)
        self.encoder.requires_grad_(bool(self.config.encoder.trainable))

    def weights_for_saving(self) -> dict[str, torch.Tensor]:
        """The tensors that go into ``adapter.safetensors``."""
        prefixes = weight_prefixes(self.config.encoder.weights_included)
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if k.startswith(prefixes)}
