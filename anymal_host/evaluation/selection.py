"""The one class-balanced subset: which items a limited evaluation scores and which items training validates on."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["select_items"]

Item = TypeVar("Item", bound=Mapping[str, Any])


def select_items(items: Sequence[Item], limit: int | None, seed: int = 0) -> list[Item]:
    """At most ``limit`` items, the same ones for the same ``seed``, kept in data-set order.

    When items carry a ``"label"`` the pick is class-balanced (round-robin over classes, each class shuffled),
    so a small ``limit`` still covers every class instead of the first few recordings of one person.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 0:
        raise ValueError(f"limit must be a positive number of items, got {limit}")
    rng = random.Random(seed)
    if all("label" in item for item in items):
        by_class: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            by_class.setdefault(str(item["label"]), []).append(i)
        queues = []
        for label in sorted(by_class):  # sorted: the pick must not depend on the order classes first appear
            indices = by_class[label][:]
            rng.shuffle(indices)
            queues.append(indices)
        chosen: list[int] = []
        depth = 0
        while len(chosen) < limit:
            for queue in queues:
                if depth < len(queue) and len(chosen) < limit:
                    chosen.append(queue[depth])
            depth += 1
    else:
        chosen = rng.sample(range(len(items)), limit)
    return [items[i] for i in sorted(chosen)]
