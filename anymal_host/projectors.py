"""Projectors: encoder features ``[B, T, D]`` -> ``[B, N, H]`` tokens in the LLM's embedding space.

``linear`` and ``mlp`` project each step (N = T, the mask passes through); ``perceiver`` resamples any number
of steps into a fixed number of latent tokens (N = num_tokens), as AnyMAL does for vision. They are registered
by the default plugin ``anymal_host.default_plugins.projectors`` through the same hook third parties use.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LinearProjector", "MLPProjector", "PerceiverResampler"]


class LinearProjector(nn.Module):
    """One linear map per step (AnyMAL's IMU projector)."""

    #: One token per encoder step (see ``AdapterConfig.token_mode``).
    token_mode = "per_step"

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(features), mask


class MLPProjector(nn.Module):
    """Two linear layers with a GELU between them (LLaVA-1.5's ``mlp2x_gelu``)."""

    #: One token per encoder step (see ``AdapterConfig.token_mode``).
    token_mode = "per_step"

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int | None = None, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.proj = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(features), mask


class _PerceiverBlock(nn.Module):
    """Latents attend to [features; latents] (Flamingo's resampler), then a feed-forward layer."""

    def __init__(self, dim: int, heads: int, ff_mult: int) -> None:
        super().__init__()
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * ff_mult), nn.GELU(), nn.Linear(dim * ff_mult, dim))

    def forward(self, media: torch.Tensor, media_mask: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media = self.norm_media(media)
        normed = self.norm_latents(latents)
        keys = torch.cat([media, normed], dim=1)
        # Latent keys are always visible, so every query has at least one key even for an all-padding item.
        key_padding = torch.cat([~media_mask, media_mask.new_zeros(latents.shape[:2])], dim=1)
        attended, _ = self.attn(normed, keys, keys, key_padding_mask=key_padding, need_weights=False)
        latents = latents + attended
        return latents + self.ff(latents)


class PerceiverResampler(nn.Module):
    """Variable-length masked features in, ``num_tokens`` latent tokens out."""

    #: Always ``num_tokens`` tokens, whatever the input's length.
    token_mode = "fixed"

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_tokens: int = 64,
        depth: int = 2,
        heads: int = 8,
        dim: int | None = None,
        ff_mult: int = 2,
        max_steps: int = 4096,
    ) -> None:
        super().__init__()
        # Options come from adapter configs other people wrote: each is a whole number in a range that real
        # resamplers use, so a config cannot ask for a million layers (minutes and gigabytes even on meta).
        for option, value, high in (("num_tokens", num_tokens, 4096), ("depth", depth, 64), ("heads", heads, 256),
                                    ("ff_mult", ff_mult, 16), ("max_steps", max_steps, 65536),
                                    ("dim", dim if dim is not None else 1, 65536)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ValueError(f"perceiver option {option}={value!r}: use a whole number from 1 to {high}")
        dim = dim or out_dim
        if dim % heads:
            raise ValueError(f"perceiver width {dim} is not divisible by heads={heads}: pick heads that divide it")
        self.num_tokens = num_tokens
        self.input_proj = nn.Linear(in_dim, dim)
        # Learned positions so the resampler knows the order of steps (attention alone is order-blind).
        self.positions = nn.Parameter(torch.zeros(max_steps, dim))
        self.latents = nn.Parameter(torch.randn(num_tokens, dim) * dim**-0.5)
        self.blocks = nn.ModuleList(_PerceiverBlock(dim, heads, ff_mult) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.output_proj = nn.Linear(dim, out_dim)
        nn.init.normal_(self.positions, std=0.02)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps = features.shape[1]
        if steps > self.positions.shape[0]:
            raise ValueError(f"perceiver got {steps} steps but was built for at most {self.positions.shape[0]}: "
                             "raise max_steps in the projector options")
        media = self.input_proj(features) + self.positions[:steps]
        latents = self.latents.unsqueeze(0).expand(features.shape[0], -1, -1)
        for block in self.blocks:
            latents = block(media, mask, latents)
        tokens = self.output_proj(self.norm(latents))
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
