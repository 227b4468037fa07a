"""``Encoder``: the base class of modality encoders (a ``torch.nn.Module``).

Kept apart from :mod:`anymal_host.modality` so that declaring a modality imports no torch;
``anymal_host.modality.Encoder`` and ``anymal_host.Encoder`` still name this class.
"""

from __future__ import annotations

from torch import nn

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """Base class of modality encoders.

    ``forward(signals, mask)`` takes a collated batch ``[B, T, ...]`` and a boolean step mask ``[B, T]``
    (True = real data) and returns ``(features [B, T', feature_dim], feature_mask [B, T'])``. Features at
    padded steps are exactly zero, and an item's features do not depend on what it is batched with (the
    conformance kit's ``check_encoder`` checks both).
    """

    #: Width D of the features this encoder returns; the projector is sized from it.
    feature_dim: int
    #: Whether ``build_encoder`` loads real pretrained weights. Only then may an adapter package leave the
    #: encoder weights out (``encoder.weights_included: false``); a package that does so for an encoder with
    #: ``False`` here is refused (its encoder would run untrained). ``None``, the default for encoders written
    #: before this attribute existed, loads such packages with a warning.
    pretrained_weights: bool | None = None
