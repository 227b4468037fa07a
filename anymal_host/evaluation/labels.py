"""Reading classes out of generated answers: the label parser, accuracy and the confusion matrix (and its PNG)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..modality import DatasetSpec
    from .report import EvalReport

__all__ = ["UNPARSED", "Classification", "LabelSetup", "classify", "label_matcher", "label_setup", "save_confusion_png"]

#: Column of the confusion matrix that counts answers ``parse_label`` could not read as any class.
UNPARSED = "unparsed"


def label_matcher(labels: Sequence[str]) -> Callable[[str], str | None]:
    """A fallback ``parse_label`` for data sets that name classes but bring no parser: the class whose name
    appears earliest in the text as whole words (case-insensitive); on a tie the longer name wins, so
    "walking upstairs" is not read as "walking"."""
    patterns = [(label, re.compile(r"\b" + r"\s+".join(map(re.escape, label.lower().split())) + r"\b")) for label in labels]

    def parse(text: str) -> str | None:
        best: tuple[int, int, str] | None = None
        lowered = text.lower()
        for label, pattern in patterns:
            match = pattern.search(lowered)
            if match and (best is None or (match.start(), -len(label)) < (best[0], best[1])):
                best = (match.start(), -len(label), label)
        return best[2] if best else None

    return parse


@dataclass
class LabelSetup:
    """How answers about some items are classified: the classes, the parser and each item's true class."""

    #: Class names; empty when accuracy cannot be computed (then ``parse`` is None).
    labels: list[str]
    parse: Callable[[str], str | None] | None
    #: Each item's label as a string (None where an item has none).
    true_labels: list[str | None]

    @property
    def classifies(self) -> bool:
        return bool(self.labels) and self.parse is not None


def label_setup(dataset: DatasetSpec, items: Sequence[Mapping[str, Any]]) -> LabelSetup:
    """The classes of ``dataset`` (its ``labels``, else the labels its items carry), its ``parse_label`` (else
    :func:`label_matcher`), and the items' true labels. Accuracy needs a true label on every item: without one,
    the setup classifies nothing. Evaluation and training's validation accuracy both use this."""
    labels = list(dataset.labels)
    if not labels and all("label" in item for item in items):
        labels = sorted({str(item["label"]) for item in items})
    # As strings, so labels given as numbers meet the class names inferred above.
    true_labels = [None if item.get("label") is None else str(item["label"]) for item in items]
    parse = dataset.parse_label or (label_matcher(labels) if labels else None)
    if not all(label is not None for label in true_labels):
        labels, parse = [], None
    return LabelSetup(labels, parse, true_labels)


@dataclass
class Classification:
    """What :func:`classify` read out of a list of answers."""

    predicted: list[str | None]
    #: ``confusion[i][j]``: items of true class ``labels[i]`` answered as ``labels[j]``; last column: unparsed.
    confusion: list[list[int]]
    accuracy: float | None
    per_class_accuracy: dict[str, float | None]
    support: dict[str, int]


def classify(answers: Sequence[str], true_labels: Sequence[str | None], labels: Sequence[str],
             parse_label: Callable[[str], str | None]) -> Classification:
    """Parse a class out of every answer and count it against the true class. A parsed label that is not one of
    ``labels`` counts as unparsed; every true label must be one of ``labels``."""
    labels = list(labels)
    index = {label: i for i, label in enumerate(labels)}
    n = len(answers)
    predicted: list[str | None] = [None] * n
    confusion = [[0] * (len(labels) + 1) for _ in labels]
    for i, (answer, truth) in enumerate(zip(answers, true_labels)):
        if truth not in index:
            raise ValueError(f"item {i} has label {truth!r}, which is not one of the data set's labels "
                             f"({', '.join(labels)}): fix the data set's labels or its items")
        guess = parse_label(answer)
        predicted[i] = guess if guess in index else None
        column = index[guess] if guess in index else len(labels)
        confusion[index[truth]][column] += 1
    correct = sum(confusion[i][i] for i in range(len(labels)))
    support = {label: sum(confusion[i]) for i, label in enumerate(labels)}
    per_class = {label: confusion[i][i] / support[label] if support[label] else None for i, label in enumerate(labels)}
    return Classification(predicted, confusion, correct / n if n else None, per_class, support)


def save_confusion_png(report: EvalReport, path: str | Path) -> Path:
    """Draw the confusion matrix as a heat map (colour: share of the true class; text: counts) into ``path``."""
    if not report.labels or not report.confusion:
        raise ValueError(f"the report on {report.dataset or 'this data set'} has no labels, so there is no confusion "
                         "matrix to draw")
    import numpy as np
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot state, no display needed

    counts = np.asarray(report.confusion, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # rows sum to 1: classes of any size compare
    columns = report.confusion_columns
    size = 1.8 + 0.75 * len(columns)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="share of the true class")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=9,
                    color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right")
    ax.set_yticks(range(len(report.labels)), report.labels)
    ax.set_xlabel("predicted (parsed from the answer)")
    ax.set_ylabel("true")
    title = f"{report.dataset} [{report.split}], n={report.n}: accuracy {pct(report.accuracy)}"
    if report.baseline is not None:
        title += f" (text only {pct(report.baseline.accuracy)})"
    ax.set_title(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def pct(value: float | None) -> str:
    """``0.25`` -> ``"25.0%"``; None -> ``"-"``."""
    return "-" if value is None else f"{100 * value:.1f}%"
