"""Evaluate an adapter on held-out instructions (:mod:`anymal_host.instructions`): accuracy per task where the
answer is checkable, caption metrics over every answer, and the text-only baseline beside them.

Each conversation is asked without its final answer, the host answers greedily, and the answer is scored by the
conversation's ``check``: the class a data set's label parser reads out of it (``label``), its last yes or no
(``yes_no``), or the option it names last (``choice``): an answer may give its reasons before its verdict
("The first shows sitting and the second shows walking, so no."). An answer that says none of these is wrong.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..instructions import Check, conversation_prompt
from .captions import caption_metrics_with_details
from .labels import label_matcher

if TYPE_CHECKING:
    from ..host import AnymalHost
    from ..modality import DatasetSpec

__all__ = ["InstructionReport", "evaluate_instructions", "answer_is_right", "save_instruction_report"]

_YES_NO = re.compile(r"\b(yes|no)\b")


@dataclass
class InstructionReport:
    """The outcome of answering an instruction split (or its text-only baseline, in ``baseline``)."""

    #: The instruction set's folder and split.
    dataset: str
    split: str
    #: Conversations answered.
    n: int
    #: Right answers among the checkable ones (None when none is checkable).
    accuracy: float | None
    #: Per task: ``{"n", "checked", "accuracy"}``.
    tasks: dict[str, dict[str, Any]]
    #: Caption metrics of every answer against the conversation's final answer.
    bleu4: float | None = None
    rouge_l: float | None = None
    cider: float | None = None
    #: The adapter that encoded the attachments (None for the baseline).
    adapter: str | None = None
    #: A few ``{"id", "task", "answer", "reference", "right"}`` rows, one or two per task.
    examples: list[dict[str, Any]] = field(default_factory=list)
    #: Every answer, in the split's order (``{"id", "task", "answer", "right"}``), for rescoring and reading.
    answers: list[dict[str, Any]] = field(default_factory=list)
    #: The same conversations without their attachments.
    baseline: InstructionReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A table a person reads: accuracy per task, overall and caption metrics, the baseline beside each."""
        other = self.baseline
        pct = lambda v: "-" if v is None else f"{v:.1%}"
        fmt = lambda v: "-" if v is None else f"{v:.3f}"
        lines = [f"{self.dataset} [{self.split}], {self.n} conversations, adapter {self.adapter}",
                 f"{'task':<12} {'n':>5} {'accuracy':>9} {'text only':>10}"]
        for task, row in sorted(self.tasks.items()):
            base = other.tasks.get(task, {}).get("accuracy") if other else None
            lines.append(f"{task:<12} {row['n']:>5} {pct(row['accuracy']):>9} {pct(base):>10}")
        lines.append(f"{'all checked':<12} {sum(r['checked'] for r in self.tasks.values()):>5} "
                     f"{pct(self.accuracy):>9} {pct(other.accuracy if other else None):>10}")
        for name in ("bleu4", "rouge_l", "cider"):
            value, base = getattr(self, name), getattr(other, name) if other else None
            lines.append(f"{name:<12} {'':>5} {fmt(value):>9} {fmt(base):>10}")
        return "\n".join(lines)


def answer_is_right(answer: str, check: Check, parse_label: Callable[[str], str | None] | None = None) -> bool:
    """Whether ``answer`` passes ``check`` (``parse_label`` reads a class for ``label`` checks)."""
    text = answer.lower()
    if check.kind == "yes_no":
        found = _YES_NO.findall(text)
        return bool(found) and found[-1] == check.answer
    if check.kind == "choice":
        positions = [(m.start(), option) for option in check.options
                     for m in re.finditer(r"\b" + re.escape(option.lower()) + r"\b", text)]
        return bool(positions) and max(positions)[1] == check.answer
    if parse_label is None:
        raise ValueError(f"a label check needs the label parser of data set {check.dataset!r}")
    return parse_label(answer) == check.answer


def evaluate_instructions(host: AnymalHost, dataset: DatasetSpec, split: str = "test", adapter: str | None = None,
                          batch_size: int = 16, limit: int | None = None, max_new_tokens: int = 32,
                          baseline: bool = True, progress: bool = True, caption_scores: bool = True,
                          build_options: Mapping[str, Any] | None = None) -> InstructionReport:
    """Answer the conversations of an instruction set's ``split`` and score them (module docstring).

    Args:
        host: the host whose LLM answers; ``adapter`` (or the modality's active / bundled one) encodes.
        dataset: :func:`anymal_host.instructions.instruction_dataset` of the set.
        limit: answer the first ``limit`` conversations only.
        baseline: also answer every conversation without its attachments.
        Others as :func:`anymal_host.evaluation.evaluate`.
    """
    from tqdm.auto import tqdm

    from .run import prepare_run

    adapter, options = prepare_run(host, adapter, dataset.modality, batch_size, caption_scores, build_options)
    items = list(dataset.build(split, **options))[:limit]
    if not items:
        raise ValueError(f"instruction set {dataset.name!r} has no conversations in split {split!r}")
    parsers = _label_parsers(host, items)

    def answer_all(with_attachments: bool, desc: str) -> list[str]:
        answers: list[str] = []
        with tqdm(total=len(items), desc=desc, unit="conv", disable=not progress) as bar:
            for start in range(0, len(items), batch_size):
                batch = items[start:start + batch_size]
                prompts = [conversation_prompt(item, adapter, with_attachments=with_attachments) for item in batch]
                answers.extend(host.generate(prompts, max_new_tokens=max_new_tokens, do_sample=False))
                bar.update(len(batch))
        return answers

    def report_of(answers: list[str], name: str | None) -> InstructionReport:
        return _score(items, answers, parsers, dataset.name, split, name, caption_scores)

    report = report_of(answer_all(True, f"instructions {split} [{len(items)}]"), adapter)
    if baseline:
        report.baseline = report_of(answer_all(False, "text only"), None)
    return report


def _label_parsers(host: AnymalHost, items: Sequence[Mapping[str, Any]]) -> dict[str, Callable[[str], str | None]]:
    """The label parser of every data set the items' label checks name."""
    parsers = {}
    for item in items:
        check = item.get("check")
        if check is not None and check.kind == "label" and check.dataset not in parsers:
            spec = host.registry.dataset(check.dataset)  # names the plugin to install when it is missing
            parsers[check.dataset] = spec.parse_label or label_matcher(spec.labels)
    return parsers


def _score(items: Sequence[Mapping[str, Any]], answers: Sequence[str],
           parsers: Mapping[str, Callable[[str], str | None]], dataset: str, split: str, adapter: str | None,
           caption_scores: bool) -> InstructionReport:
    per_task: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "checked": 0, "right": 0})
    examples: list[dict[str, Any]] = []
    shown: dict[str, int] = defaultdict(int)
    every: list[dict[str, Any]] = []
    for item, answer in zip(items, answers):
        row = per_task[item["task"]]
        row["n"] += 1
        check = item.get("check")
        right = None
        if check is not None:
            right = answer_is_right(answer, check, parsers.get(check.dataset or ""))
            row["checked"] += 1
            row["right"] += int(right)
        every.append({"id": item["id"], "task": item["task"], "answer": answer, "right": right})
        if shown[item["task"]] < 2:
            shown[item["task"]] += 1
            examples.append({"id": item["id"], "task": item["task"], "answer": answer, "reference": item["caption"],
                             "right": right})
    tasks = {task: {"n": r["n"], "checked": r["checked"],
                    "accuracy": r["right"] / r["checked"] if r["checked"] else None} for task, r in per_task.items()}
    checked = sum(r["checked"] for r in per_task.values())
    accuracy = sum(r["right"] for r in per_task.values()) / checked if checked else None
    report = InstructionReport(dataset, split, len(items), accuracy, tasks, adapter=adapter, examples=examples,
                               answers=every)
    if caption_scores:
        metrics, _ = caption_metrics_with_details(answers, [item["caption"] for item in items])
        report.bleu4, report.rouge_l, report.cider = metrics["bleu4"], metrics["rouge_l"], metrics["cider"]
    return report


def save_instruction_report(report: InstructionReport, folder: str | Path) -> Path:
    """Write ``instruction_report.json`` into ``folder``; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "instruction_report.json"
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path
