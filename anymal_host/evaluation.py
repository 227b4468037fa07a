"""Evaluate an adapter on a plugin's data set: classification accuracy, a confusion matrix and caption metrics,
each next to a text-only baseline.

One call does the whole run::

    report = evaluate(host, registry.datasets["imu:hapt"], split="test", adapter="imu-hapt")
    print(report.summary())
    save_report(report, "runs/eval")          # eval_report.json + confusion_matrix.png

Every item's signal is attached (already preprocessed) before the data set's evaluation question, the host
answers greedily, the data set's ``parse_label`` reads a class out of each answer, and the answers are also
scored as captions against the items' reference captions. The same question without a signal gives the
text-only baseline: what the LLM says from the question alone, i.e. how much of the accuracy the signal buys.

The aggregation is a pure function, :func:`score`, so it can be tested (and reused) on hand-made answers.

Metric scales (these follow each library's own convention, so numbers compare with published ones):

* ``accuracy`` and per-class accuracy: fractions in [0, 1]; an answer ``parse_label`` cannot read is wrong.
* ``bleu4``: corpus BLEU-4 from sacrebleu, **0-100**, sacrebleu's default (case-sensitive, ``13a`` tokens).
* ``rouge_l``: mean ROUGE-L F-measure from rouge-score, in [0, 1].
* ``cider``: CIDEr from pycocoevalcap (0-10 scale, x10 built in), with lower-cased word tokens. Its idf comes
  from the evaluated references themselves, so it is only comparable between runs on the same items.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .prompt import Attachment

if TYPE_CHECKING:  # the host imports torch and transformers; this module only needs it for type hints
    from .host import AnymalHost
    from .modality import DatasetSpec

__all__ = [
    "DEFAULT_QUESTION",
    "UNPARSED",
    "EvalReport",
    "caption_metrics",
    "evaluate",
    "label_matcher",
    "save_confusion_png",
    "save_report",
    "score",
    "select_items",
]

#: Column of the confusion matrix that counts answers ``parse_label`` could not read as any class.
UNPARSED = "unparsed"
#: Asked when a data set brings no questions; the same as the trainer's first generic question, so an adapter
#: trained without data-set questions is evaluated on a question it has seen.
DEFAULT_QUESTION = "Describe this {modality} recording."
#: Packages that compute the caption metrics (imported only when the metrics are computed).
CAPTION_METRIC_PACKAGES = {"sacrebleu": "sacrebleu", "rouge_score": "rouge-score", "pycocoevalcap": "pycocoevalcap"}


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
        accuracy_key = f"{self.task}_accuracy" if self.task else "accuracy"
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


# ----- item selection ---------------------------------------------------------------------------------


def select_items(items: Sequence[Mapping[str, Any]], limit: int | None, seed: int = 0) -> list[Mapping[str, Any]]:
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


# ----- scoring (pure) -----------------------------------------------------------------------------------


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
    index = {label: i for i, label in enumerate(labels)}
    classify = bool(labels) and parse_label is not None

    predicted: list[str | None] = [None] * n
    confusion = [[0] * (len(labels) + 1) for _ in labels]
    accuracy: float | None = None
    per_class: dict[str, float | None] = {}
    support: dict[str, int] = {}
    if classify:
        for i, (answer, truth) in enumerate(zip(answers, true_labels)):
            if truth not in index:
                raise ValueError(f"item {i} has label {truth!r}, which is not one of the data set's labels "
                                 f"({', '.join(labels)}): fix the data set's labels or its items")
            guess = parse_label(answer)  # type: ignore[misc]
            predicted[i] = guess if guess in index else None
            column = index[guess] if guess in index else len(labels)
            confusion[index[truth]][column] += 1
        correct = sum(confusion[i][i] for i in range(len(labels)))
        accuracy = correct / n if n else None
        for i, label in enumerate(labels):
            support[label] = sum(confusion[i])
            per_class[label] = confusion[i][i] / support[label] if support[label] else None

    metrics: dict[str, float | None] = {"bleu4": None, "rouge_l": None, "cider": None}
    details: dict[str, str] = {}
    if caption_scores and n:
        metrics, details = _caption_metrics(answers, references)

    return EvalReport(
        dataset=dataset, split=split, n=n, question=question, labels=labels if classify else [],
        accuracy=accuracy, per_class_accuracy=per_class, support=support, confusion=confusion if classify else [],
        bleu4=metrics["bleu4"], rouge_l=metrics["rouge_l"], cider=metrics["cider"],
        examples=_examples(answers, references, true_labels, predicted, n_examples),
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


_WORD = re.compile(r"[a-z0-9]+")


def caption_metrics(answers: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``{"bleu4", "rouge_l", "cider"}`` of ``answers`` against one reference caption each (scales in the
    module docstring)."""
    values, _ = _caption_metrics(answers, references)
    return {k: float(v) for k, v in values.items() if v is not None}


def _caption_metrics(answers: Sequence[str], references: Sequence[str]) -> tuple[dict[str, float | None], dict[str, str]]:
    _require_caption_packages()
    # Imported here: the packages are only needed when a run computes caption metrics.
    from importlib.metadata import version

    import sacrebleu
    from pycocoevalcap.cider.cider import Cider
    from rouge_score import rouge_scorer

    hyps = [a or "" for a in answers]
    refs = [r or "" for r in references]
    bleu = sacrebleu.metrics.BLEU()
    bleu4 = float(bleu.corpus_score(hyps, [refs]).score)

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge_l = sum(scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hyps, refs)) / len(hyps)

    # COCO tokenizes with a Java PTB tokenizer; lower-cased alphanumeric words are the same up to punctuation
    # handling and keep this pure Python.
    tokens = lambda s: " ".join(_WORD.findall(s.lower()))
    gts = {i: [tokens(r)] for i, r in enumerate(refs)}
    res = {i: [tokens(h)] for i, h in enumerate(hyps)}
    if any(gts[i][0] for i in gts):
        cider = float(Cider().compute_score(gts, res)[0])
    else:  # pycocoevalcap cannot build idf weights from references without words
        cider = 0.0
    details = {
        "bleu4": f"sacrebleu {version('sacrebleu')} corpus BLEU, 0-100, {bleu.get_signature()}",
        "rouge_l": f"rouge-score {version('rouge-score')} ROUGE-L F-measure, mean over items",
        "cider": f"pycocoevalcap {version('pycocoevalcap')} CIDEr, lower-cased alphanumeric word tokens",
    }
    return {"bleu4": bleu4, "rouge_l": float(rouge_l), "cider": cider if math.isfinite(cider) else None}, details


def _require_caption_packages() -> None:
    """Fail before generating anything when a caption-metric package is missing, not after an hour of work."""
    from importlib.util import find_spec

    missing = [pip for module, pip in CAPTION_METRIC_PACKAGES.items() if find_spec(module) is None]
    if missing:
        raise ImportError(f"caption metrics need {', '.join(missing)}: pip install {' '.join(missing)}")


# ----- running the host ---------------------------------------------------------------------------------


def evaluate(
    host: AnymalHost,
    dataset: DatasetSpec,
    split: str = "test",
    adapter: str | None = None,
    question: str | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    max_new_tokens: int = 24,
    baseline: bool = True,
    progress: bool = True,
    seed: int = 0,
    *,
    build_options: Mapping[str, Any] | None = None,
    task: str | None = None,
    caption_scores: bool = True,
) -> EvalReport:
    """Answer ``question`` about every item of ``dataset``'s ``split`` and score the answers.

    Args:
        host: the host whose LLM answers; ``adapter`` (or the modality's active / bundled one) encodes signals.
        dataset: the plugin's data set; its items need ``"signal"`` (preprocessed) and ``"caption"``, and a
            ``"label"`` among ``dataset.labels`` for accuracy. Without ``labels`` the classes are taken from
            the items; without ``parse_label`` an answer's class is the class name it mentions first.
        split: which split to build.
        adapter: name of a loaded adapter; None uses the modality's active adapter.
        question: asked after the signal; default the data set's first question, else a generic one.
        batch_size: conversations per ``host.generate`` call.
        limit: score at most this many items (class-balanced and the same for the same ``seed``).
        max_new_tokens: answer length cap; greedy decoding, so answers are reproducible.
        baseline: also ask the question without the signal (``report.baseline``).
        progress: show a tqdm progress bar.
        seed: picks the ``limit`` items.
        build_options: passed to ``dataset.build(split, **build_options)``.
        task: name for model-card keys (``activity`` -> ``activity_accuracy``); default ``dataset.info["task"]``.
        caption_scores: compute BLEU-4 / ROUGE-L / CIDEr (needs sacrebleu, rouge-score, pycocoevalcap).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if caption_scores:
        _require_caption_packages()
    if adapter is not None:
        _check_adapter(host, adapter, dataset.modality)

    items = select_items(list(dataset.build(split, **dict(build_options or {}))), limit, seed)
    if not items:
        raise ValueError(f"data set {dataset.name!r} has no items in split {split!r}: nothing to evaluate")
    for i, item in enumerate(items):
        missing = [key for key in ("signal", "caption") if key not in item]
        if missing:
            raise ValueError(f"data set {dataset.name!r}: item {i} has no {' or '.join(missing)}; evaluation needs "
                             "a preprocessed 'signal' and a reference 'caption' per item")

    labels = list(dataset.labels)
    if not labels and all("label" in item for item in items):
        labels = sorted({str(item["label"]) for item in items})
    # As strings, so labels given as numbers meet the class names inferred above.
    true_labels = [None if item.get("label") is None else str(item["label"]) for item in items]
    parse = dataset.parse_label or (label_matcher(labels) if labels else None)
    if not all(label is not None for label in true_labels):
        labels, parse = [], None  # accuracy needs a true label on every item
    question = question or (dataset.questions[0] if dataset.questions else DEFAULT_QUESTION.format(modality=dataset.modality))
    references = [str(item["caption"]) for item in items]
    task = task if task is not None else dataset.info.get("task")
    common: dict[str, Any] = {"dataset": dataset.name, "split": split, "question": question, "task": task,
                              "caption_scores": caption_scores}

    answers = _generate_with_signals(host, dataset, items, question, adapter, batch_size, max_new_tokens, progress)
    adapter_name = adapter or host.active_adapter_name(dataset.modality)
    report = score(answers, references, true_labels, labels, parse, adapter=adapter_name, **common)

    if baseline:
        # Without an attachment every item's prompt is the same text, and decoding is greedy, so one
        # generation gives every item's text-only answer: ask once and reuse it instead of N identical calls.
        text_only = host.generate([[{"role": "user", "content": question}]], max_new_tokens=max_new_tokens,
                                  do_sample=False)[0]
        report.baseline = score([text_only] * len(items), references, true_labels, labels, parse, adapter=None,
                                n_examples=1, **common)
    return report


def _check_adapter(host: AnymalHost, adapter: str, modality: str) -> None:
    from .errors import AdapterNotFoundError

    slots = host.adapters
    if adapter not in slots:
        raise AdapterNotFoundError(f"no adapter named {adapter!r} is loaded (loaded: {', '.join(slots) or 'none'}): "
                                   "load it with host.load_adapter(REF) first")
    own = slots[adapter].adapter.config.modality
    if own != modality:
        raise ValueError(f"adapter {adapter!r} is for modality {own!r}, but the data set is {modality!r}: "
                         f"pick an adapter trained on {modality} signals")


def _generate_with_signals(host: AnymalHost, dataset: DatasetSpec, items: Sequence[Mapping[str, Any]], question: str,
                           adapter: str | None, batch_size: int, max_new_tokens: int, progress: bool) -> list[str]:
    from tqdm.auto import tqdm

    answers: list[str] = []
    with tqdm(total=len(items), desc=f"eval {dataset.name} [{len(items)}]", unit="item", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            # Signal first, then the question: the layout the trainer uses, so the adapter sees what it learnt.
            conversations = [[{"role": "user", "content": [
                Attachment(item["signal"], modality=dataset.modality, adapter=adapter, preprocessed=True), question,
            ]}] for item in batch]
            answers.extend(host.generate(conversations, max_new_tokens=max_new_tokens, do_sample=False))
            bar.update(len(batch))
    return answers


# ----- saving ---------------------------------------------------------------------------------------------


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
    title = f"{report.dataset} [{report.split}], n={report.n}: accuracy {_pct(report.accuracy)}"
    if report.baseline is not None:
        title += f" (text only {_pct(report.baseline.accuracy)})"
    ax.set_title(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
