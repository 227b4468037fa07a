"""Asking about signals: the evaluation question and greedy answers to it, one conversation per item.

Both :func:`anymal_host.evaluation.evaluate` (through a host) and training's validation accuracy (through the
adapter being trained) generate here, so an adapter is validated on exactly the prompt it is evaluated on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..prompt import Attachment

if TYPE_CHECKING:
    from ..modality import DatasetSpec

__all__ = ["DEFAULT_QUESTION", "Conversation", "evaluation_question", "item_question", "generate_answers"]

#: Asked when a data set brings no questions; the same as the trainer's first generic question, so an adapter
#: trained without data-set questions is evaluated on a question it has seen.
DEFAULT_QUESTION = "Describe this {modality} recording."

Conversation = list[dict[str, Any]]


def evaluation_question(dataset: DatasetSpec, question: str | None = None) -> str:
    """``question``, else the data set's first question, else the generic one for its modality."""
    return question or (dataset.questions[0] if dataset.questions else DEFAULT_QUESTION.format(modality=dataset.modality))


def item_question(item: Mapping[str, Any], default: str, *, own: bool = True) -> str:
    """What to ask about ``item``: its own question when it carries one and ``own`` (``"question"``, else the
    first of ``"questions"``: one data set can then mix tasks, such as shape, colour and count), else
    ``default``."""
    if own:
        if isinstance(item.get("question"), str) and item["question"]:
            return item["question"]
        questions = item.get("questions")
        if isinstance(questions, (list, tuple)) and questions and isinstance(questions[0], str):
            return questions[0]
    return default


def generate_answers(generate: Callable[[list[Conversation]], list[str]], items: Sequence[Mapping[str, Any]],
                     modality: str, question: str, *, adapter: str | None = None, batch_size: int = 32,
                     progress: bool = False, desc: str = "answering", own_questions: bool = True) -> list[str]:
    """One answer per item: ``generate`` (greedy, the caller's LLM and adapter) gets batches of ``batch_size``
    conversations, each the item's preprocessed signal followed by its question (:func:`item_question`:
    the item's own when ``own_questions``, else ``question``)."""
    from tqdm.auto import tqdm

    answers: list[str] = []
    with tqdm(total=len(items), desc=desc, unit="item", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            # Signal first, then the question: the layout the trainer uses, so the adapter sees what it learnt.
            conversations: list[Conversation] = [[{"role": "user", "content": [
                Attachment(item["signal"], modality=modality, adapter=adapter, preprocessed=True),
                item_question(item, question, own=own_questions),
            ]}] for item in batch]
            answers.extend(generate(conversations))
            bar.update(len(batch))
    return answers
