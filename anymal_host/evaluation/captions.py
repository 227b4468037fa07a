"""Caption metrics of generated answers against reference captions: BLEU-4, ROUGE-L and CIDEr.

Scales follow each library's own convention, so numbers compare with published ones: ``bleu4`` is corpus
BLEU-4 from sacrebleu, 0-100 (case-sensitive, ``13a`` tokens); ``rouge_l`` the mean ROUGE-L F-measure from
rouge-score, in [0, 1]; ``cider`` CIDEr from pycocoevalcap (0-10 scale, x10 built in) on lower-cased word
tokens, whose idf comes from the evaluated references themselves (comparable between runs on the same items).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

__all__ = ["CAPTION_METRIC_PACKAGES", "caption_metrics", "caption_metrics_with_details", "require_caption_packages"]

#: Packages that compute the caption metrics (imported only when the metrics are computed).
CAPTION_METRIC_PACKAGES = {"sacrebleu": "sacrebleu", "rouge_score": "rouge-score", "pycocoevalcap": "pycocoevalcap"}

_WORD = re.compile(r"[a-z0-9]+")


def caption_metrics(answers: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``{"bleu4", "rouge_l", "cider"}`` of ``answers`` against one reference caption each (scales in the
    module docstring)."""
    values, _ = caption_metrics_with_details(answers, references)
    return {k: float(v) for k, v in values.items() if v is not None}


def caption_metrics_with_details(answers: Sequence[str],
                                 references: Sequence[str]) -> tuple[dict[str, float | None], dict[str, str]]:
    """The metrics, and how each was computed (library versions, sacrebleu's signature) for reproducibility."""
    require_caption_packages()
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


def require_caption_packages() -> None:
    """Fail before generating anything when a caption-metric package is missing, not after an hour of work
    (:class:`~anymal_host.errors.MissingExtraError`, an ImportError naming ``pip install 'anymal[eval]'``)."""
    from ..extras import require_extra

    require_extra("eval", "caption metrics", tuple(CAPTION_METRIC_PACKAGES))
