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

One module per job:

* :mod:`.selection`: the class-balanced subset (``select_items``), also what training validates on;
* :mod:`.answers`: the evaluation question and greedy answers to it (training's validation accuracy too);
* :mod:`.labels`: reading classes out of answers, accuracy, the confusion matrix and its PNG;
* :mod:`.captions`: BLEU-4 (sacrebleu, 0-100), ROUGE-L F (rouge-score, 0-1), CIDEr (pycocoevalcap, 0-10);
* :mod:`.report`: ``EvalReport``, the pure ``score`` (testable on hand-made answers) and ``save_report``;
* :mod:`.run`: ``evaluate``, which puts them together through a host.

Accuracy and per-class accuracy are fractions in [0, 1]; an answer ``parse_label`` cannot read is wrong.
"""

from __future__ import annotations

from .answers import DEFAULT_QUESTION, evaluation_question, generate_answers
from .captions import CAPTION_METRIC_PACKAGES, caption_metrics
from .labels import UNPARSED, label_matcher, label_setup, save_confusion_png
from .report import EvalReport, save_report, score
from .run import evaluate
from .selection import select_items

__all__ = [
    "CAPTION_METRIC_PACKAGES",
    "DEFAULT_QUESTION",
    "UNPARSED",
    "EvalReport",
    "caption_metrics",
    "evaluate",
    "evaluation_question",
    "generate_answers",
    "label_matcher",
    "label_setup",
    "save_confusion_png",
    "save_report",
    "score",
    "select_items",
]
