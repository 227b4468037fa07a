"""Stage-2 instruction sets: writing one from a labelled data set, reading it back (and refusing malformed
lines), training stage 2 on it (LoRA and projector-only) and scoring held-out answers."""

import json

import pytest
import torch

from adapters_hub import load_adapter_package
from anymal_host import AnymalHost
from anymal_host.evaluation.instructions import answer_is_right, evaluate_instructions
from anymal_host.instruction_set import TASK_WEIGHTS, write_instruction_set
from anymal_host.instructions import (Check, InstructionFormatError, attachments_of, dataset_for,
                                      instruction_dataset, is_instruction_set, read_instructions)
from anymal_host.prompt import Attachment
from anymal_host.training import TrainConfig, train


@pytest.fixture
def instruction_set(tmp_path, registry):
    folder = tmp_path / "set"
    write_instruction_set(registry.dataset("toy:levels"), folder, {"train": 40, "val": 8, "test": 12}, progress=False)
    return folder


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_written_set_has_every_task_with_checks_and_keeps_splits_apart(instruction_set, registry):
    train_lines, test_lines = lines(instruction_set / "train.jsonl"), lines(instruction_set / "test.jsonl")
    assert len(train_lines) == 40 and len(test_lines) == 12
    assert {r["task"] for r in train_lines} == set(TASK_WEIGHTS)
    assert all(r["messages"][-1]["role"] == "assistant" and r["check"]["kind"] in ("label", "yes_no", "choice")
               for r in train_lines)
    # a held-out conversation only names held-out files, and every named file exists
    for split, records in (("train", train_lines), ("test", test_lines)):
        paths = [p["file"]["path"] for r in records for m in r["messages"] if isinstance(m["content"], list)
                 for p in m["content"] if p["type"] == "file"]
        assert paths and all(p.startswith(f"files/{split}-") for p in paths)
        assert all((instruction_set / p).is_file() for p in paths)
    compare = [r for r in train_lines if r["task"] in ("compare", "which")]
    assert all(sum(p["type"] == "file" for p in r["messages"][0]["content"]) == 2 for r in compare)
    follow = next(r for r in train_lines if r["task"] == "follow_up")
    assert [m["role"] for m in follow["messages"]] == ["user", "assistant", "user", "assistant"]
    # the same seed writes the same set
    again = instruction_set.parent / "again"
    write_instruction_set(registry.dataset("toy:levels"), again, {"train": 40}, progress=False)
    assert (again / "train.jsonl").read_text() == (instruction_set / "train.jsonl").read_text()


def test_writing_refuses_what_it_cannot_write(tmp_path, registry, instruction_set):
    with pytest.raises(FileExistsError, match="not empty"):
        write_instruction_set(registry.dataset("toy:levels"), instruction_set, {"train": 4}, progress=False)
    with pytest.raises(ValueError, match="no labels"):
        write_instruction_set(registry.dataset("toy:ramps"), tmp_path / "ramps", {"train": 4}, progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        write_instruction_set(registry.dataset("toy:levels"), tmp_path / "x", {"dev": 4}, progress=False)
    from dataclasses import replace

    no_source = replace(registry.dataset("toy:levels"),
                        build=lambda split, **_: [{"signal": torch.zeros(3, 2), "caption": "c", "label": "high"},
                                                  {"signal": torch.zeros(3, 2), "caption": "c", "label": "low"}])
    with pytest.raises(InstructionFormatError, match="no 'source'"):
        write_instruction_set(no_source, tmp_path / "y", {"train": 4}, progress=False)


def test_reading_loads_each_attachment_with_the_adapters_preprocessing(instruction_set, registry):
    spec = instruction_dataset(instruction_set, registry)
    assert spec.modality == "toy" and is_instruction_set(str(instruction_set))
    assert dataset_for(str(instruction_set), registry).name == spec.name
    assert dataset_for("toy:levels", registry).name == "toy:levels"
    items = spec.build("test")
    plain = {id(a.source): a.source for item in items for a in attachments_of(item)}
    doubled = spec.build("test", scale=2.0)  # the toy modality's preprocessing option
    first, twice = attachments_of(items[0])[0], attachments_of(doubled[0])[0]
    assert isinstance(first, Attachment) and first.preprocessed and first.modality == "toy"
    assert torch.allclose(twice.source, first.source * 2)
    # a file several conversations name is loaded once
    assert len(plain) < sum(len(attachments_of(item)) for item in items)
    assert all(isinstance(item["check"], Check) and item["caption"] == item["messages"][-1]["content"][0]
               for item in items)


@pytest.mark.parametrize("record, message", [
    ("not json", "not JSON"),
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "'role'"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"path": "files/test-00000.toy"}}, "Hi"]},
                   {"role": "assistant", "content": "Yes."}]}, "content part"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"path": "files/test-00000.toy"}}]}]},
     "last message must be the assistant"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yes."}]}, "no attachment"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"path": "nowhere.toy"}}]},
                   {"role": "assistant", "content": "Yes."}]}, "does not exist"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"path": "../set/train.jsonl"}}]},
                   {"role": "assistant", "content": "Yes."}]}, "no installed modality"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"path": "files/test-00000.toy"}}]},
                   {"role": "assistant", "content": "Yes."}], "check": {"kind": "yes_no", "answer": "maybe"}},
     "'yes' or 'no'"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"path": "files/test-00000.toy"}}]},
                   {"role": "assistant", "content": "Yes."}], "check": {"kind": "label", "answer": "high"}},
     "names the data set"),
])
def test_a_malformed_line_is_refused_with_its_file_and_line(instruction_set, registry, record, message):
    first = (instruction_set / "test.jsonl").read_text().splitlines()[0]
    (instruction_set / "files" / "test-00000.toy").write_text("1 1\n2 2\n")
    bad = instruction_set / "bad.jsonl"
    bad.write_text(first + "\n" + (record if isinstance(record, str) else json.dumps(record)) + "\n")
    with pytest.raises(InstructionFormatError, match=message) as caught:
        read_instructions(bad, registry)
    assert f"{bad}:2" in str(caught.value)


def test_answers_are_checked_by_kind():
    yes = Check("yes_no", "yes")
    assert answer_is_right("Yes, both show sitting.", yes) and not answer_is_right("No.", yes)
    assert not answer_is_right("I cannot tell.", yes)
    assert not answer_is_right("Nobody knows, yes.", Check("yes_no", "no"))  # "nobody" is not "no"
    which = Check("choice", "second", options=("first", "second"))
    assert answer_is_right("The second one.", which) and not answer_is_right("The second? No, the first.", which)
    # the reasons may come first: the verdict is the last yes / no, the option named last
    assert answer_is_right("The first shows sitting and the second shows walking, so the second one.", which)
    assert answer_is_right("It is sitting, not standing, so no.", Check("yes_no", "no"))
    label = Check("label", "sitting", dataset="imu:hapt")
    assert answer_is_right("They are sitting.", label, lambda text: "sitting" if "sit" in text else None)
    with pytest.raises(ValueError, match="label parser"):
        answer_is_right("sitting", label)


def config(tmp_path, folder, **overrides):
    base = dict(dataset=str(folder), output_dir=str(tmp_path / "run"), projector="linear",
                encoder={"name": "toy", "width": 8}, steps=4, batch_size=4, lr=5e-3, eval_every=4, val_items=4,
                warmup_steps=1, seed=0, stage=2)
    return TrainConfig(**{**base, **overrides})


def test_projector_only_stage2_on_an_instruction_set_leaves_the_llm_frozen(tmp_path, tiny, registry, instruction_set):
    host = AnymalHost(tiny, registry=registry)
    frozen = {k: v.clone() for k, v in host.llm.model.state_dict().items()}
    result = train(config(tmp_path, instruction_set, lora_r=0), host, progress=False)
    assert all(torch.equal(v, host.llm.model.state_dict()[k]) for k, v in frozen.items())
    cfg, _ = load_adapter_package(result.best_dir)
    assert cfg.lora is None and not (result.best_dir / "lora").exists()
    assert "val_loss" in cfg.metrics and "val_accuracy" not in cfg.metrics  # conversations carry checks, not labels


def test_lora_stage2_trains_on_conversations_with_two_attachments(tmp_path, registry, instruction_set):
    from anymal_host.testing import tiny_llm

    host = AnymalHost(tiny_llm(), registry=registry)  # stage 2 wraps the LLM in LoRA: a private one
    result = train(config(tmp_path, instruction_set, lora_r=4, steps=3, eval_every=3), host, progress=False)
    cfg, _ = load_adapter_package(result.best_dir)
    assert cfg.lora is not None and cfg.lora["r"] == 4
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)


def test_encoding_once_gives_the_losses_of_encoding_every_step(tmp_path, tiny, registry, instruction_set):
    runs = []
    for cache in (True, False):
        host = AnymalHost(tiny, registry=registry)
        result = train(config(tmp_path / str(cache), instruction_set, lora_r=0, train_encoder=False, steps=2,
                              eval_every=2, cache_features=cache), host, progress=False)
        runs.append([h["loss"] for h in result.history])
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)


def test_held_out_answers_are_scored_per_task_beside_the_text_only_baseline(tmp_path, tiny, registry,
                                                                            instruction_set):
    from tests.conftest import toy_config
    from anymal_host import ModalityAdapter

    torch.manual_seed(0)
    host = AnymalHost(tiny, registry=registry)
    host.add_adapter(ModalityAdapter.from_config(toy_config(tiny), registry))
    spec = instruction_dataset(instruction_set, registry)
    report = evaluate_instructions(host, spec, split="test", batch_size=5, max_new_tokens=4, progress=False,
                                   caption_scores=False)
    assert report.n == 12 and report.adapter == "toy-meanpool" and report.baseline.adapter is None
    assert sum(row["n"] for row in report.tasks.values()) == 12
    assert all(0 <= row["accuracy"] <= 1 for row in report.tasks.values())
    assert report.accuracy is not None and report.baseline.accuracy is not None
    assert "all checked" in report.summary() and "text only" in report.summary()
    assert {e["task"] for e in report.examples} == set(report.tasks)
