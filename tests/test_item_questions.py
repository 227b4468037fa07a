"""Items may carry their own question: one data set can mix tasks (shape, colour, count), each caption paired
with a question that fits it, in training, in evaluation and in its text-only baseline."""

from __future__ import annotations

import random

import torch

from anymal_host import DatasetSpec
from anymal_host.evaluation.answers import generate_answers, item_question
from anymal_host.training.loop import _conversation

SPEC = DatasetSpec(name="toy:mixed", modality="toy", build=lambda split, **o: [], questions=("What is it?",))
SIGNAL = torch.zeros(12, 2)


def test_training_asks_the_items_own_question():
    rng = random.Random(0)
    own = _conversation({"signal": SIGNAL, "caption": "Three.", "question": "How many?"}, SPEC, SPEC.questions, rng)
    assert own[0]["content"][1] == "How many?"
    choices = {_conversation({"signal": SIGNAL, "caption": "Red.", "questions": ["What colour?", "Which colour?"]},
                             SPEC, SPEC.questions, rng)[0]["content"][1] for _ in range(20)}
    assert choices == {"What colour?", "Which colour?"}
    plain = _conversation({"signal": SIGNAL, "caption": "A thing."}, SPEC, SPEC.questions, rng)
    assert plain[0]["content"][1] == "What is it?"


def test_evaluation_asks_each_item_its_question_unless_one_is_given():
    items = [{"signal": SIGNAL, "caption": "Three.", "question": "How many?"},
             {"signal": SIGNAL, "caption": "Red.", "questions": ["What colour?", "Which colour?"]},
             {"signal": SIGNAL, "caption": "A thing."}]
    asked: list[str] = []

    def generate(conversations):  # records what the LLM would be asked; answers are not the point here
        asked.extend(c[0]["content"][1] for c in conversations)
        return ["x"] * len(conversations)

    generate_answers(generate, items, "toy", "What is it?")
    assert asked == ["How many?", "What colour?", "What is it?"]
    asked.clear()
    generate_answers(generate, items, "toy", "Describe it.", own_questions=False)
    assert asked == ["Describe it."] * 3
    assert item_question({"question": ""}, "default") == "default"
