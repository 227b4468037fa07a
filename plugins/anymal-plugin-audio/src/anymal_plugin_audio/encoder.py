"""``AudioEncoder``: a strided 1-D convolution and a small per-step MLP, one feature step per ``STRIDE`` readings.

Imported only when an adapter is built (``AudioModality.build_encoder``), so registering the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from anymal_host import Encoder

__all__ = ["AudioEncoder", "ENCODER_NAME", "STRIDE", "build_encoder"]

#: The name adapter packages record in ``encoder.name``; ``build_encoder`` refuses any other.
ENCODER_NAME = "audio-conv"
#: Readings per feature step: the convolution's kernel and stride. With the default ``linear`` projector each
#: feature step becomes one LLM token, so a 32-reading window costs 8 tokens.
STRIDE = 4
#: Feature width when the config gives none.
DEFAULT_WIDTH = 32


class AudioEncoder(Encoder):
    """``[B, T, 1]`` readings -> ``[B, T // STRIDE, width]`` features in ``(-1, 1)``.

    The convolution sees ``STRIDE`` readings at a time (their level and their slope); the MLP mixes its
    channels. It is small on purpose (1,216 parameters at width 32): a small encoder aligns on a few
    hundred examples, and the projector does the rest.
    """

    #: This plugin ships no trained encoder: every adapter package must carry the encoder's weights. The host
    #: refuses a package that leaves them out, because the encoder would run untrained.
    pretrained_weights = False

    def __init__(self, width: int = DEFAULT_WIDTH) -> None:
        super().__init__()
        self.feature_dim = width
        self.conv = nn.Conv1d(1, width, kernel_size=STRIDE, stride=STRIDE)
        # tanh keeps the features bounded, so the projector's output stays near the LLM's embedding scale
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(width, width), nn.Tanh())

    def forward(self, signals: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``signals [B, T, 1]`` and ``mask [B, T]`` (True = a real reading) -> ``(features, feature_mask)``."""
        x = (signals * mask.unsqueeze(-1).to(signals.dtype)).transpose(1, 2)  # zero the padding; [B, 1, T]
        features = self.mlp(self.conv(x).transpose(1, 2))  # [B, T // STRIDE, width]
        # Padding sits at the end of a sequence, so a step is real exactly when its last reading is.
        feature_mask = mask[:, STRIDE - 1::STRIDE]
        # The biases make padded steps non-zero; the contract wants them exactly zero, so that nothing
        # downstream (a pooling projector, say) can pick up the padding.
        return features * feature_mask.unsqueeze(-1).to(features.dtype), feature_mask


def build_encoder(config: Mapping[str, Any]) -> AudioEncoder:
    """Build the encoder an adapter's ``encoder`` section describes: ``{"name": ENCODER_NAME, "width": 32}``."""
    name = config.get("name")
    if name != ENCODER_NAME:
        raise ValueError(f"unknown audio encoder {name!r}: this plugin provides {ENCODER_NAME!r} "
                         f"(pass --encoder-option name={ENCODER_NAME})")
    unknown = sorted(set(config) - {"name", "width"})
    if unknown:
        raise ValueError(f"encoder {ENCODER_NAME!r} has no option(s) {', '.join(unknown)}: it takes width")
    width = config.get("width", DEFAULT_WIDTH)
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 4096:
        raise ValueError(f"encoder {ENCODER_NAME!r}: width={width!r}: give a whole number from 1 to 4096")
    return AudioEncoder(width=width)
