"""Write a stage-2 instruction set (:mod:`anymal_host.instructions`) from a plugin's labelled data set.

Each signal of the data set is written once as a file the modality loads, and conversations of five kinds are
made from the labels, in the proportions of :data:`TASK_WEIGHTS`:

- ``open``: the data set's own question about one attachment, answered by its caption;
- ``yes_no``: "Is the activity walking? Answer yes or no." about one attachment, half of them true;
- ``compare``: two attachments, "Do these two recordings show the same activity?", half of them the same;
- ``which``: two attachments of different classes, "Which recording shows sitting: the first or the second?";
- ``follow_up``: a second user turn bringing a second attachment after the first one was answered.

Answers to yes/no, compare and which questions give the evidence first and the verdict last ("The first
shows sitting and the second shows walking, so no."): a small LLM that names each attachment before it
decides learns the comparison, where one that must answer "No" first does not (docs/instructions.md has the
measurement). Attachments stand before or after the question, by chance, so an adapter learns no fixed layout. Every
conversation but ``open``'s free caption carries a ``check``, so held-out answers are scored by accuracy;
``open`` ones are scored by their class and by caption metrics.

A data set's items need ``"source"`` besides ``"label"``: what the modality's ``load`` reads back into the item's
signal. A numpy array is written as ``.npy``, a file path is copied, and bytes are written with the item's
``"source_suffix"`` (``".wav"``) as the extension.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from tqdm.auto import tqdm

from .instructions import SPLITS, InstructionFormatError

if TYPE_CHECKING:
    from .modality import DatasetSpec

__all__ = ["TASK_WEIGHTS", "InstructionSetReport", "write_instruction_set"]

#: Share of each task among a split's conversations.
TASK_WEIGHTS = {"open": 0.2, "yes_no": 0.25, "compare": 0.2, "which": 0.15, "follow_up": 0.2}


@dataclass
class InstructionSetReport:
    """What :func:`write_instruction_set` wrote."""

    folder: Path
    # Conversations per split.
    conversations: dict[str, int]
    # Attachment files written per split.
    files: dict[str, int]
    # Conversations per task, over all splits.
    tasks: dict[str, int]


def write_instruction_set(spec: DatasetSpec, folder: str | Path, sizes: Mapping[str, int], seed: int = 0,
                          progress: bool = True) -> InstructionSetReport:
    """Write ``sizes[split]`` conversations per split of ``spec`` into ``folder`` (``<split>.jsonl`` and
    ``files/<split>-NNNNN.<ext>``). Splits are kept apart: a held-out split's conversations only use its own
    signals. An existing non-empty ``folder`` is refused (nothing is overwritten)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: pick a new folder for the instruction set")
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {', '.join(unknown)}: an instruction set has {', '.join(SPLITS)}")
    if not spec.labels:
        raise ValueError(f"data set {spec.name!r} has no labels: the instruction tasks (yes/no, comparisons) are "
                         "made from class labels")
    noun = str(spec.info.get("label_noun", "class"))
    thing = str(spec.info.get("signal_noun", f"{spec.modality} recording"))
    (folder / "files").mkdir(parents=True, exist_ok=True)
    report = InstructionSetReport(folder, {}, {}, defaultdict(int))
    for split, size in sizes.items():
        if size < 1:
            continue
        items = [item for item in spec.build(split, seed=seed) if item.get("label") in spec.labels]
        if len(items) < 2:
            raise ValueError(f"data set {spec.name!r} has fewer than 2 labelled items in split {split!r}")
        rng = random.Random(f"instructions:{spec.name}:{split}:{seed}")
        maker = _Maker(spec, items, split, folder, rng, noun, thing)
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as out, \
                tqdm(total=size, desc=f"instructions {split}", unit="conv", disable=not progress) as bar:
            tasks = rng.choices(list(TASK_WEIGHTS), weights=list(TASK_WEIGHTS.values()), k=size)
            for number, task in enumerate(tasks):
                record = {"id": f"{split}-{number:05d}", "task": task, **getattr(maker, task)()}
                out.write(json.dumps(record) + "\n")
                report.tasks[task] += 1
                bar.update()
        report.conversations[split] = size
        report.files[split] = len(maker.written)
    report.tasks = dict(report.tasks)
    return report


class _Maker:
    """Conversations of one split; each method makes one of its task kind."""

    def __init__(self, spec: DatasetSpec, items: Sequence[Mapping[str, Any]], split: str, folder: Path,
                 rng: random.Random, noun: str, thing: str) -> None:
        self.spec, self.items, self.split, self.folder, self.rng = spec, items, split, folder, rng
        self.noun, self.thing = noun, thing
        self.by_label: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            self.by_label[item["label"]].append(index)
        self.written: dict[int, str] = {}  # item index -> relative path of its file

    # --- the five tasks ------------------------------------------------------------------------------

    def open(self) -> dict[str, Any]:
        index = self._any()
        return self._record([self._ask(self._question(), index)], self.items[index]["caption"],
                            self._label_check(index))

    def yes_no(self) -> dict[str, Any]:
        index = self._any()
        label = self.items[index]["label"]
        asked = label if self.rng.random() < 0.5 else self._other_label(label)
        question = f"Is the {self.noun} {asked}? Answer yes or no."
        # The evidence first, then the verdict: a small LLM names what it sees before it has to decide.
        answer = f"It is {label}, so yes." if asked == label else f"It is {label}, not {asked}, so no."
        return self._record([self._ask(question, index)], answer, _yes_no(asked == label))

    def compare(self) -> dict[str, Any]:
        first = self._any()
        label = self.items[first]["label"]
        same = self.rng.random() < 0.5
        second = self._of(label, avoid=first) if same else self._of(self._other_label(label))
        other = self.items[second]["label"]
        question = f"Do these two {self.thing}s show the same {self.noun}? Answer yes or no."
        answer = f"The first shows {label} and the second shows {other}, so {'yes' if same else 'no'}."
        return self._record([self._ask(question, first, second)], answer, _yes_no(same))

    def which(self) -> dict[str, Any]:
        first = self._any()
        second = self._of(self._other_label(self.items[first]["label"]))
        target = self.rng.choice(["first", "second"])
        label = self.items[first if target == "first" else second]["label"]
        question = f"Which {self.thing} shows {label}: the first or the second?"
        answer = (f"The first shows {self.items[first]['label']} and the second shows "
                  f"{self.items[second]['label']}, so the {target} one.")
        return self._record([self._ask(question, first, second)], answer,
                            {"kind": "choice", "answer": target, "options": ["first", "second"]})

    def follow_up(self) -> dict[str, Any]:
        first, second = self._any(), self._any()
        question = self._question()
        follow = self.rng.choice([f"And in this one, what is the {self.noun}?", f"What about this {self.thing}?",
                                  f"Now this {self.thing}: what is the {self.noun}?"])
        messages = [self._ask(question, first), {"role": "assistant", "content": self.items[first]["caption"]},
                    self._ask(follow, second)]
        return self._record(messages, self.items[second]["caption"], self._label_check(second))

    # --- helpers ---------------------------------------------------------------------------------------

    def _record(self, messages: list[dict[str, Any]], answer: str, check: dict[str, Any]) -> dict[str, Any]:
        return {"messages": messages + [{"role": "assistant", "content": answer}], "check": check}

    def _ask(self, question: str, *indices: int) -> dict[str, Any]:
        """A user message: the attachments, then the question, or (by chance) the question first."""
        files = [{"type": "file", "file": {"path": self._file(i)}} for i in indices]
        text = {"type": "text", "text": question}
        return {"role": "user", "content": files + [text] if self.rng.random() < 0.7 else [text] + files}

    def _question(self) -> str:
        """One of the data set's own questions (a generic one when it has none)."""
        return self.rng.choice(list(self.spec.questions) or [f"Describe this {self.thing}."])

    def _label_check(self, index: int) -> dict[str, str]:
        return {"kind": "label", "answer": self.items[index]["label"], "dataset": self.spec.name}

    def _any(self) -> int:
        return self.rng.randrange(len(self.items))

    def _of(self, label: str, avoid: int | None = None) -> int:
        choices = [i for i in self.by_label[label] if i != avoid] or self.by_label[label]
        return self.rng.choice(choices)

    def _other_label(self, label: str) -> str:
        return self.rng.choice([other for other in self.by_label if other != label])

    def _file(self, index: int) -> str:
        if index not in self.written:
            stem = f"files/{self.split}-{index:05d}"
            self.written[index] = _write_source(self.items[index], self.folder, stem, self.spec.name)
        return self.written[index]


def _yes_no(true: bool) -> dict[str, str]:
    return {"kind": "yes_no", "answer": "yes" if true else "no"}


def _write_source(item: Mapping[str, Any], folder: Path, stem: str, dataset: str) -> str:
    """Write what ``item["source"]`` holds as a file the modality loads; returns its path relative to ``folder``."""
    source = item.get("source")
    if source is None:
        raise InstructionFormatError(f"data set {dataset!r} gives no 'source' per item, so its signals cannot be "
                                     "written as files: its plugin adds 'source' (what the modality's load reads: "
                                     "an array, a file path, or bytes with 'source_suffix') to each item")
    if isinstance(source, (str, Path)):
        relative = stem + Path(source).suffix
        shutil.copyfile(source, folder / relative)
        return relative
    if isinstance(source, bytes):  # a file's bytes: its extension, which picks the modality, comes with it
        suffix = item.get("source_suffix")
        if not isinstance(suffix, str) or not suffix.startswith("."):
            raise InstructionFormatError(f"data set {dataset!r}: an item whose 'source' is bytes needs "
                                         "'source_suffix', the file extension its modality loads ('.wav')")
        relative = stem + suffix
        (folder / relative).write_bytes(source)
        return relative
    writer = _WRITERS.get(type(source).__module__.split(".")[0])
    if writer is None:
        raise InstructionFormatError(f"data set {dataset!r}: cannot write a {type(source).__name__} source as a file: "
                                     "give a numpy array or a file path")
    return writer(source, folder, stem)


def _write_numpy(source: Any, folder: Path, stem: str) -> str:
    import numpy as np

    relative = stem + ".npy"
    np.save(folder / relative, np.asarray(source), allow_pickle=False)
    return relative


_WRITERS: dict[str, Callable[[Any, Path, str], str]] = {"numpy": _write_numpy}
