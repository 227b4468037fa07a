"""Validation accuracy during training, and the warning when it shows the adapter is not learning.

At each validation the adapter being trained answers the evaluation question about a small, fixed,
class-balanced set of validation items, greedily; the data set's ``parse_label`` reads a class out of each
answer. This is the generation and label parsing of :func:`anymal_host.evaluation.evaluate` (same question,
same prompt layout, same label handling), only run through the training adapter instead of a host's loaded
one. A falling validation loss can hide an adapter that names one class for everything, or none: the accuracy
shows it, and :class:`NotLearningWarning` says so once it stays at the majority-class rate or at chance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..evaluation.answers import Conversation, evaluation_question, generate_answers
from ..evaluation.labels import LabelSetup, classify, label_setup
from ..evaluation.selection import select_items
from ..modality import DatasetSpec

__all__ = ["NotLearningWarning", "ValidationAnswers", "PATIENCE", "not_learning_streak", "not_learning_message"]

#: Validations in a row at or below the baseline before the run warns.
PATIENCE = 2
#: Answer length cap, as ``evaluate``'s default: the label is read from the first class an answer names.
MAX_NEW_TOKENS = 24


class NotLearningWarning(UserWarning):
    """Validation accuracy has stayed at or below the majority-class rate or chance (``anymal train`` prints it
    as a ``warning:`` line)."""


@dataclass
class ValidationAnswers:
    """The fixed validation items answered at every validation, and how their answers are classified."""

    spec: DatasetSpec
    items: list[Mapping[str, Any]]
    classes: LabelSetup
    question: str

    @classmethod
    def pick(cls, spec: DatasetSpec, val_split: Sequence[Mapping[str, Any]], limit: int,
             seed: int) -> ValidationAnswers | None:
        """Up to ``limit`` class-balanced items of the validation split (``evaluate(limit=...)``'s pick); None when
        ``limit`` is 0 or the items cannot be classified (no labels)."""
        if limit <= 0:
            return None
        items = select_items(val_split, limit, seed)
        classes = label_setup(spec, items)
        if not items or not classes.classifies:
            return None
        return cls(spec, items, classes, evaluation_question(spec))

    def measure(self, generate: Callable[[list[Conversation]], list[str]], batch_size: int) -> dict[str, Any]:
        """Answer every item with ``generate`` and classify the answers: the fields a validation record gets."""
        assert self.classes.parse is not None  # pick() keeps only items it can classify
        answers = generate_answers(generate, self.items, self.spec.modality, self.question, batch_size=batch_size)
        result = classify(answers, self.classes.true_labels, self.classes.labels, self.classes.parse)
        top, top_count = Counter(result.predicted).most_common(1)[0]
        n = len(answers)
        return {
            "val_accuracy": result.accuracy,
            "val_answers": n,
            # A model that always names the most common class of these items scores this.
            "val_majority": max(result.support.values()) / n,
            "val_chance": 1 / len(self.classes.labels),
            # The class named most often (None: no class could be read) and its share of the answers.
            "val_top_prediction": top,
            "val_top_share": top_count / n,
        }


def not_learning_streak(history: Sequence[Mapping[str, Any]]) -> int:
    """How many of the latest validations in a row had an accuracy at or below max(majority rate, chance)."""
    streak = 0
    for record in reversed([r for r in history if r.get("val_accuracy") is not None]):
        if record["val_accuracy"] > max(record["val_majority"], record["val_chance"]) + 1e-9:
            break
        streak += 1
    return streak


def not_learning_message(record: Mapping[str, Any], streak: int, *, train_encoder: bool,
                         init_encoder: bool) -> str:
    """The warning's text: what was seen, then what to try."""
    baseline = max(record["val_majority"], record["val_chance"])
    which = "chance" if record["val_chance"] >= record["val_majority"] else "the majority-class rate"
    top = record["val_top_prediction"]
    seen = (f"{record['val_top_share']:.0%} of the answers name {top!r}" if top is not None
            else f"{record['val_top_share']:.0%} of the answers name no class")
    tips = ["more --steps", "a higher --lr"]
    if not train_encoder:
        tips.append("training the encoder too (drop --freeze-encoder)")
    if not init_encoder:
        tips.append("starting the encoder from `anymal train pretrain-encoder` (--init-encoder)")
    tips.append("captions that name one class each, in fewer templates, so the class is what the loss rewards")
    return (f"validation accuracy has stayed at or below {which} ({baseline:.1%}) for {streak} validations in a "
            f"row: {record['val_accuracy']:.1%} on {record['val_answers']} answers at step {record['step']}, and "
            f"{seen}. The adapter is not learning to tell the classes apart (a falling loss can come from the "
            f"caption's wording alone). Try " + ", ".join(tips[:-1]) + f", or {tips[-1]}.")
