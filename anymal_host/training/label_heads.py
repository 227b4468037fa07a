"""An auxiliary loss beside the caption loss: each item's label read straight from the adapter's tokens.

Stage 1 trains the projector through the LLM's caption loss alone. Where a label turns on one word of the caption
("There are three shapes."), that word's gradient is all that asks the projector to keep what the label needs,
and a projector can settle on tokens that hold too little of it. The image plugin measured this: a probe reads
the count from the frozen encoder's map 95.5% of the time, but from the trained resampler's 32 tokens only
81-86% (87% on the scenes it trained on), and the LLM answered 84.5% right.

``TrainConfig.label_loss`` adds, for every question the training items ask, a linear classifier from the item's
tokens to the labels that question has, and adds its cross-entropy (times the weight) to the caption loss. The
classifiers exist only during training: the adapter package holds the projector alone, and hosts never see them.
They are kept beside a checkpoint's trainer state (:data:`LABEL_HEADS`) so that ``--resume`` restores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..errors import TrainConfigError

__all__ = ["LabelHeads", "LABEL_HEADS", "MAX_CLASSES", "task_of", "load_label_heads"]

#: A checkpoint's classifier weights (trainer state: never exported, published or bundled).
LABEL_HEADS = "label_heads.safetensors"
#: Questions with more labels than this get no classifier (free-text labels, such as whole captions).
MAX_CLASSES = 100


def task_of(item: Mapping[str, Any]) -> str | None:
    """The question an item's label answers (its ``question``, or its ``questions`` joined), or None when the item
    carries no single-attachment label: instruction conversations, unlabelled items."""
    if "messages" in item or item.get("label") is None:
        return None
    if item.get("question"):
        return str(item["question"])
    if item.get("questions"):
        return " | ".join(map(str, item["questions"]))
    return ""  # the data set's own questions, all asking for the same label


class LabelHeads(nn.Module):
    """One linear classifier per question, over an item's tokens: flattened when every attachment has the same
    number of tokens (``token_mode == "fixed"``, as a Perceiver resampler gives), else their mean."""

    def __init__(self, items: Sequence[Mapping[str, Any]], num_tokens: int, hidden_size: int, fixed: bool) -> None:
        super().__init__()
        labels: dict[str, set[str]] = {}
        for item in items:
            task = task_of(item)
            if task is not None:
                labels.setdefault(task, set()).add(str(item["label"]))
        # sorted: the same items give the same heads in the same order, so a resumed run finds its weights
        self.classes = {task: sorted(names) for task, names in sorted(labels.items())
                        if 2 <= len(names) <= MAX_CLASSES}
        if not self.classes:
            raise TrainConfigError("label_loss needs training items that carry a 'label' (at most "
                             f"{MAX_CLASSES} distinct labels per question): this data set's items carry none; "
                             "train without --label-loss")
        self.fixed = fixed
        width = num_tokens * hidden_size if fixed else hidden_size
        self.tasks = list(self.classes)
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, len(names)))
                                   for names in self.classes.values())

    def loss(self, items: Sequence[Mapping[str, Any]], tokens: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """Mean cross-entropy of the items that have a classifier (``tokens``: one ``[N_i, H]`` tensor per
        item's attachment, in order); 0 when none of them has one, None when there are no tokens."""
        losses = []
        for item, item_tokens in zip(items, tokens):
            task = task_of(item)
            if task not in self.classes or str(item["label"]) not in self.classes[task]:
                continue
            features = item_tokens.flatten() if self.fixed else item_tokens.mean(0)
            logits = self.heads[self.tasks.index(task)](features.float())
            target = torch.tensor(self.classes[task].index(str(item["label"])), device=logits.device)
            losses.append(nn.functional.cross_entropy(logits[None], target[None]))
        if losses:
            return torch.stack(losses).mean()
        # none has one: a zero that still reaches the tokens, so every process of a multi-process run takes part
        # in the same backward pass
        return sum(t.sum() for t in tokens) * 0.0 if tokens else None

    def describe(self) -> str:
        """One line for the training log: the questions and how many labels each has."""
        return "; ".join(f"{task!r}: {len(names)} labels" for task, names in self.classes.items())


def load_label_heads(checkpoint: Path, heads: LabelHeads) -> None:
    """Restore a ``--label-loss`` run's classifiers from ``checkpoint`` (for ``--resume``)."""
    from safetensors.torch import load_file

    path = checkpoint / LABEL_HEADS
    if not path.is_file():
        raise TrainConfigError(f"--resume {checkpoint}: it has no {LABEL_HEADS}, so it was trained without "
                               "--label-loss: resume with the run's own settings, or start from it with --init-from")
    try:
        heads.load_state_dict(load_file(str(path)))
    except RuntimeError as error:  # other questions or labels than this run's data gives
        raise TrainConfigError(f"--resume {checkpoint}: its label classifiers do not fit this run's data ({error}): "
                               "resume on the data set the run was trained on") from None
