"""``evaluate``: build a split, answer a question about every item through the host, score the answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .answers import evaluation_question, generate_answers, item_question
from .captions import require_caption_packages
from .labels import label_setup
from .report import EvalReport, score
from .selection import select_items

if TYPE_CHECKING:  # the host imports torch and transformers; this module only needs it for type hints
    from ..host import AnymalHost
    from ..modality import DatasetSpec

__all__ = ["evaluate"]


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
        adapter: name of a loaded adapter; None uses the modality's active adapter, else its bundled one.
        question: asked after the signal; default the data set's first question, else a generic one.
        batch_size: conversations per ``host.generate`` call.
        limit: score at most this many items (class-balanced and the same for the same ``seed``).
        max_new_tokens: answer length cap; greedy decoding, so answers are reproducible.
        baseline: also ask the question without the signal (``report.baseline``).
        progress: show a tqdm progress bar.
        seed: picks the ``limit`` items.
        build_options: passed to ``dataset.build(split, **options)`` on top of the adapter's recorded
            ``preprocessing`` (the options it was trained with), which the data set always gets.
        task: name for model-card keys (``activity`` -> ``activity_accuracy``); default ``dataset.info["task"]``.
        caption_scores: compute BLEU-4 / ROUGE-L / CIDEr (needs sacrebleu, rouge-score, pycocoevalcap).
    """
    adapter, options = prepare_run(host, adapter, dataset.modality, batch_size, caption_scores, build_options)

    items = select_items(list(dataset.build(split, **options)), limit, seed)
    if not items:
        raise ValueError(f"data set {dataset.name!r} has no items in split {split!r}: nothing to evaluate")
    for i, item in enumerate(items):
        missing = [key for key in ("signal", "caption") if key not in item]
        if missing:
            raise ValueError(f"data set {dataset.name!r}: item {i} has no {' or '.join(missing)}; evaluation needs "
                             "a preprocessed 'signal' and a reference 'caption' per item")

    classes = label_setup(dataset, items)
    own_questions = question is None  # an explicit question is asked of every item; else items' own win
    question = evaluation_question(dataset, question)
    references = [str(item["caption"]) for item in items]
    task = task if task is not None else dataset.info.get("task")
    common: dict[str, Any] = {"dataset": dataset.name, "split": split, "question": question, "task": task,
                              "caption_scores": caption_scores}

    answers = generate_answers(lambda conversations: host.generate(conversations, max_new_tokens=max_new_tokens,
                                                                   do_sample=False),
                               items, dataset.modality, question, adapter=adapter, batch_size=batch_size,
                               progress=progress, desc=f"eval {dataset.name} [{len(items)}]",
                               own_questions=own_questions)
    report = score(answers, references, classes.true_labels, classes.labels, classes.parse, adapter=adapter, **common)

    if baseline:
        # Without an attachment every item's prompt is the same text, and decoding is greedy, so one
        # generation gives every item's text-only answer: ask once and reuse it instead of N identical calls.
        asked = [item_question(item, question, own=own_questions) for item in items]
        distinct = sorted(set(asked))
        texts = host.generate([[{"role": "user", "content": q}] for q in distinct], max_new_tokens=max_new_tokens,
                              do_sample=False)
        text_only = dict(zip(distinct, texts))
        report.baseline = score([text_only[q] for q in asked], references, classes.true_labels, classes.labels,
                                classes.parse, adapter=None, n_examples=len(distinct), **common)
    return report


def prepare_run(host: AnymalHost, adapter: str | None, modality: str, batch_size: int, caption_scores: bool,
                build_options: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """What every evaluation checks and decides before answering: the answering adapter's name
    (:func:`_answering_adapter`) and the options to build the data with."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if caption_scores:
        require_caption_packages()
    adapter = _answering_adapter(host, adapter, modality)
    # The data is built the way the adapter was trained: its recorded preprocessing, then any explicit options.
    return adapter, {**host.adapters[adapter].adapter.config.preprocessing, **dict(build_options or {})}


def _answering_adapter(host: AnymalHost, adapter: str | None, modality: str) -> str:
    """The name of the adapter that will answer: ``adapter`` (checked), else the modality's active one, else its
    bundled one, loaded now. Naming it up front lets evaluation build the data with its preprocessing and pins
    every batch (and the report) to that one adapter."""
    from ..errors import AdapterNotFoundError

    if adapter is None:
        adapter = host.active_adapter_name(modality)
    if adapter is None:
        # The host's own choice of bundled adapter (what an attachment without an adapter would get).
        return host._bundled_slot(modality).name
    slots = host.adapters
    if adapter not in slots:
        raise AdapterNotFoundError(f"no adapter named {adapter!r} is loaded (loaded: {', '.join(slots) or 'none'}): "
                                   "load it with host.load_adapter(REF) first")
    own = slots[adapter].adapter.config.modality
    if own != modality:
        raise ValueError(f"adapter {adapter!r} is for modality {own!r}, but the data set is {modality!r}: "
                         f"pick an adapter trained on {modality} signals")
    return adapter
