"""The outcome of an evaluation: :class:`EvalReport`, the pure :func:`score` that builds one from answers, and
:func:`save_report` that writes it (JSON, and the confusion matrix PNG)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .captions import caption_metrics_with_details
from .labels import UNPARSED, classify, save_confusion_png

__all__ = ["EvalReport", "score", "save_report"]


@dataclass
class EvalReport:
    """The outcome of one evaluation run (or of its text-only baseline, in ``baseline``)."""

    #: Data set name (``imu:hapt``) and split the items came from.
    dataset: str
    split: str
    #: Number of items scored.
    n: int
    #: The question asked with every item.
    question: str
    #: Class names, in the order of the confusion matrix's rows and first columns.
    labels: list[str]
    #: Fraction of items whose parsed label equals the true label; None when the items carry no labels.
    accuracy: float | None
    #: Accuracy within each true class (recall); None for a class with no items.
    per_class_accuracy: dict[str, float | None]
    #: Items per true class.
    support: dict[str, int]
    #: ``confusion[i][j]``: items of true class ``labels[i]`` answered as ``labels[j]``; the last column
    #: (``UNPARSED``) counts answers that named no class.
    confusion: list[list[int]]
    #: Caption metrics of the answers against the reference captions (scales in the module docstring).
    bleu4: float | None
    rouge_l: float | None
    cider: float | None
    #: A few ``{"answer", "reference", "label", "predicted"}`` rows, at least one per class where possible.
    examples: list[dict[str, Any]] = field(default_factory=list)
    #: The adapter that encoded the signals (None for the text-only baseline).
    adapter: str | None = None
    #: The task name used in model-card metric keys (``activity`` -> ``activity_accuracy``); None: ``accuracy``.
    task: str | None = None
    #: How each metric was computed (library versions, sacrebleu's signature), for reproducibility.
    metric_details: dict[str, str] = field(default_factory=dict)
    #: The same questions without any attachment: what the LLM answers from the text alone.
    baseline: EvalReport | None = None

    @property
    def unparsed(self) -> int:
        """Answers from which no class could be read."""
        return sum(row[-1] for row in self.confusion)

    @property
    def confusion_columns(self) -> list[str]:
        """Column names of the confusion matrix: the labels, then ``UNPARSED``."""
        return [*self.labels, UNPARSED]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the baseline nested under ``"baseline"``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalReport:
        """The inverse of :meth:`to_dict` (for reading back ``eval_report.json``)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("baseline") is not None:
            values["baseline"] = cls.from_dict(values["baseline"])
        return cls(**values)

    def metrics_for_card(self) -> dict[str, float]:
        """Flat ``{name: float}`` for a model card's metrics: accuracy, caption metrics and the item count, each
        text-only figure prefixed ``text_only_``. Metrics that were not computed are left out."""
        # a task named in words ("moving shape") makes one key: moving_shape_accuracy
        task = re.sub(r"\W+", "_", self.task).strip("_").lower() if self.task else ""
        accuracy_key = f"{task}_accuracy" if task else "accuracy"
        metrics: dict[str, float] = {}

        def put(key: str, value: float | None) -> None:
            if value is not None:
                metrics[key] = float(value)

        put(accuracy_key, self.accuracy)
        put("bleu4", self.bleu4)
        put("rouge_l", self.rouge_l)
        put("cider", self.cider)
        if self.baseline is not None:
            put(f"text_only_{accuracy_key}", self.baseline.accuracy)
            put("text_only_bleu4", self.baseline.bleu4)
            put("text_only_rouge_l", self.baseline.rouge_l)
            put("text_only_cider", self.baseline.cider)
        metrics[f"n_{self.split}"] = float(self.n)
        return metrics

    def summary(self) -> str:
        """Readable multi-line text: every figure with the text-only baseline beside it."""
        base = self.baseline
        lines = [
            f"{self.dataset} [{self.split}], {self.n} items, adapter {self.adapter or '(active)'}",
            f"question: {self.question!r}",
            "",
            f"{'':26}{'with signal':>14}{'text only' if base is not None else '':>14}",
        ]

        def row(name: str, value: Any, other: Any, fmt: Callable[[Any], str]) -> None:
            lines.append(f"{name:26}{fmt(value):>14}{fmt(other) if base is not None else '':>14}")

        pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"
        num = lambda v: "-" if v is None else f"{v:.2f}"
        num3 = lambda v: "-" if v is None else f"{v:.3f}"
        task = f"{self.task} accuracy" if self.task else "accuracy"
        if self.labels:
            row(task, self.accuracy, base and base.accuracy, pct)
            row("unparsed answers", self.unparsed, base and base.unparsed, lambda v: "-" if v is None else str(v))
        row("BLEU-4 (0-100)", self.bleu4, base and base.bleu4, num)
        row("ROUGE-L F (0-1)", self.rouge_l, base and base.rouge_l, num3)
        row("CIDEr", self.cider, base and base.cider, num3)
        if self.labels:
            lines += ["", "per-class accuracy (items):"]
            for label in self.labels:
                row(f"  {label} ({self.support.get(label, 0)})", self.per_class_accuracy.get(label),
                    base and base.per_class_accuracy.get(label), pct)
            lines += ["", "confusion matrix (rows: true, columns: predicted):"]
            first = max(len(label) for label in self.labels) + 2
            widths = [max(len(c), 5) + 2 for c in self.confusion_columns]  # each column as wide as its name
            lines.append(" " * first + "".join(f"{c:>{w}}" for c, w in zip(self.confusion_columns, widths)))
            for label, counts in zip(self.labels, self.confusion):
                lines.append(f"  {label:<{first - 2}}" + "".join(f"{c:>{w}}" for c, w in zip(counts, widths)))
        if self.examples:
            lines += ["", "examples:"]
            for ex in self.examples:
                tag = f"[{ex.get('label')} -> {ex.get('predicted') or UNPARSED}] " if self.labels else ""
                lines.append(f"  {tag}{ex['answer']!r}  (reference: {ex['reference']!r})")
        if base is not None and base.examples:
            lines += ["", f"text-only answer: {base.examples[0]['answer']!r}"]
        return "\n".join(lines)



def score(
    answers: Sequence[str],
    references: Sequence[str],
    true_labels: Sequence[str | None],
    labels: Sequence[str],
    parse_label: Callable[[str], str | None] | None,
    *,
    dataset: str = "",
    split: str = "test",
    question: str = "",
    adapter: str | None = None,
    task: str | None = None,
    n_examples: int = 6,
    caption_scores: bool = True,
) -> EvalReport:
    """Score generated ``answers`` against ``references`` (captions) and ``true_labels``; no model involved.

    Accuracy and the confusion matrix are computed when ``labels`` and ``parse_label`` are given; a parsed
    label that is not one of ``labels`` counts as unparsed. Every true label must be one of ``labels``.
    ``caption_scores=False`` leaves BLEU / ROUGE-L / CIDEr as None.
    """
    n = len(answers)
    if len(references) != n or len(true_labels) != n:
        raise ValueError(f"score needs one reference and one true label per answer: got {n} answers, "
                         f"{len(references)} references and {len(true_labels)} labels")
    labels = list(labels)
    classified = classify(answers, true_labels, labels, parse_label) if labels and parse_label is not None else None

    metrics: dict[str, float | None] = {"bleu4": None, "rouge_l": None, "cider": None}
    details: dict[str, str] = {}
    if caption_scores and n:
        metrics, details = caption_metrics_with_details(answers, references)

    return EvalReport(
        dataset=dataset, split=split, n=n, question=question, labels=labels if classified else [],
        accuracy=classified.accuracy if classified else None,
        per_class_accuracy=classified.per_class_accuracy if classified else {},
        support=classified.support if classified else {}, confusion=classified.confusion if classified else [],
        bleu4=metrics["bleu4"], rouge_l=metrics["rouge_l"], cider=metrics["cider"],
        examples=_examples(answers, references, true_labels, classified.predicted if classified else [None] * n,
                           n_examples),
        adapter=adapter, task=task, metric_details=details,
    )


def _examples(answers: Sequence[str], references: Sequence[str], true_labels: Sequence[str | None],
              predicted: Sequence[str | None], k: int) -> list[dict[str, Any]]:
    """The first item of each class, then the next items in order, up to ``k`` (deterministic, and a reader
    sees every class before seeing a second example of one)."""
    first: dict[Any, int] = {}
    for i, label in enumerate(true_labels):
        first.setdefault(label, i)
    leaders = set(first.values())
    order = sorted(leaders) + [i for i in range(len(answers)) if i not in leaders]
    return [{"answer": answers[i], "reference": references[i], "label": true_labels[i], "predicted": predicted[i]}
            for i in sorted(order[:k])]



def save_report(report: EvalReport, folder: str | Path) -> dict[str, Path]:
    """Write ``eval_report.json`` (and ``confusion_matrix.png`` when there are labels) into ``folder``;
    returns the paths written by kind (``"json"``, ``"png"``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"json": folder / "eval_report.json"}
    written["json"].write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if report.labels and report.confusion:
        written["png"] = save_confusion_png(report, folder / "confusion_matrix.png")
    return written

