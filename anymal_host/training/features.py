"""Encode every example once when the encoder is frozen.

A frozen encoder gives the same features for an item at every step, so running it again each step is pure
cost: on a CPU a pretrained image or audio encoder takes most of a training step. Before the first step the
trainer runs the encoder once over the training and validation items (in eval mode, without gradients, as
serving runs it) and keeps each item's real feature steps; the steps then run the projector and the LLM only.
The items keep everything else (caption, label, questions), so nothing downstream changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..instructions import attachments_of
from ..modality import pad_sequences
from ..prompt import Attachment

__all__ = ["EncodedSignal", "encoder_is_frozen", "encode_items", "collate_encoded", "cached_bytes"]


@dataclass(frozen=True)
class EncodedSignal:
    """An item's encoder output, computed once: ``[T, D]`` real feature steps (padding already dropped)."""

    features: torch.Tensor


def encoder_is_frozen(adapter: Any) -> bool:
    """Whether ``adapter``'s encoder trains nothing (so its features can be computed once)."""
    return not any(p.requires_grad for p in adapter.encoder.parameters())


def encode_items(adapter: Any, modality: Any, splits: Sequence[Sequence[Mapping[str, Any]]], batch_size: int,
                 progress: bool = True) -> list[list[dict[str, Any]]]:
    """Copies of the items of each split with every signal replaced by its :class:`EncodedSignal`: the
    ``signal`` of a data set's item, or each attachment of an instruction's ``messages``.

    Items that share one signal object (the same image asked several questions) are encoded once and share the
    result. The encoder runs in eval mode, the mode it serves in, and is put back as it was.
    """
    unique: dict[int, torch.Tensor] = {}
    for items in splits:
        for item in items:
            for signal in _signals_of(item):
                unique.setdefault(id(signal), signal)
    keys = list(unique)
    encoded: dict[int, EncodedSignal] = {}
    encoder = adapter.encoder
    device = next(adapter.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad(), tqdm(total=len(keys), desc="encoding once (frozen encoder)", unit="item",
                                   disable=not progress) as bar:
            for start in range(0, len(keys), batch_size):
                chunk = keys[start:start + batch_size]
                signals, mask = modality.collate([unique[k] for k in chunk])
                features, feature_mask = encoder(signals.to(device), mask.to(device))
                for key, row, row_mask in zip(chunk, features, feature_mask):
                    encoded[key] = EncodedSignal(row[row_mask].clone())
                bar.update(len(chunk))
    finally:
        encoder.train(was_training)
    return [[_with_encoded(item, encoded) for item in items] for items in splits]


def _signals_of(item: Mapping[str, Any]) -> list[Any]:
    if "messages" in item:  # an instruction set's conversation
        return [attachment.source for attachment in attachments_of(item)]
    return [item["signal"]]


def _with_encoded(item: Mapping[str, Any], encoded: Mapping[int, EncodedSignal]) -> dict[str, Any]:
    if "messages" not in item:
        return {**item, "signal": encoded[id(item["signal"])]}
    messages = [{**message, "content": [replace(part, source=encoded[id(part.source)]) if isinstance(part, Attachment)
                                        else part for part in message["content"]]}
                for message in item["messages"]]
    return {**item, "messages": messages}


def collate_encoded(sources: Sequence[EncodedSignal]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch cached features: ``(features [B, T, D], mask [B, T])``, padded to the longest."""
    return pad_sequences([s.features for s in sources])


def cached_bytes(splits: Sequence[Sequence[Mapping[str, Any]]]) -> int:
    """Memory the cached features of ``splits`` hold (each shared tensor once)."""
    seen: dict[int, int] = {}
    for items in splits:
        for item in items:
            for signal in _signals_of(item):
                if isinstance(signal, EncodedSignal):
                    seen[id(signal.features)] = signal.features.numel() * signal.features.element_size()
    return sum(seen.values())
