"""Stage-2 instruction data: JSON Lines of OpenAI-style conversations whose content parts name attachment files.

An instruction set is a folder with one file per split (``train.jsonl``, ``val.jsonl``, ``test.jsonl``) and
the attachment files its conversations name. Each line is one conversation::

    {"id": "test-00017", "task": "compare",
     "messages": [
       {"role": "user", "content": [
         {"type": "file", "file": {"path": "signals/test-00012.npy"}},
         {"type": "file", "file": {"path": "signals/test-00031.npy"}},
         {"type": "text", "text": "Do these two recordings show the same activity? Answer yes or no."}]},
       {"role": "assistant", "content": "The first shows sitting and the second shows walking, so no."}],
     "check": {"kind": "yes_no", "answer": "no"}}

- ``messages`` (required): ``system`` / ``user`` / ``assistant`` messages, the last one the assistant's answer
  (a string) that training learns and evaluation compares with. Earlier assistant turns are the conversation so
  far (multi-turn follow-ups). ``content`` is a string or a list of parts: ``{"type": "text", "text": ...}`` and
  ``{"type": "file", "file": {"path": ...}}``, OpenAI's file part with a path, relative to the JSONL file,
  instead of inline ``file_data``. The file's extension picks the modality, as ``anymal chat --attach`` does;
  each attachment stands where its part stands.
- ``check`` (optional): how an answer is scored when it is checkable. ``{"kind": "label", "answer": "sitting",
  "dataset": "imu:hapt"}``: the class the named data set's label parser reads out of the answer;
  ``{"kind": "yes_no", "answer": "yes"}``: the answer's last yes or no; ``{"kind": "choice", "answer":
  "second", "options": ["first", "second"]}``: the option the answer names last (an answer may give its
  reasons before its verdict). Without one, an answer is scored by
  caption metrics only.
- ``id`` and ``task`` (optional): a name for the example and the kind of task, for reports per task.

:func:`instruction_dataset` wraps such a folder as a :class:`~anymal_host.modality.DatasetSpec`, so
``anymal train instruct --data FOLDER`` and ``anymal eval --data FOLDER`` take it where they take a registered
data set. :mod:`anymal_host.instruction_set` writes one from a plugin's data set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from .errors import AnymalError
from .prompt import Attachment

if TYPE_CHECKING:
    from .modality import DatasetSpec
    from .plugins import Registry

__all__ = ["InstructionFormatError", "Check", "is_instruction_set", "dataset_for", "instruction_dataset",
           "read_instructions",           "conversation_prompt", "attachments_of", "SPLITS", "CHECK_KINDS"]

#: Split files an instruction set may hold.
SPLITS = ("train", "val", "test")
#: What a ``check`` can be.
CHECK_KINDS = ("label", "yes_no", "choice")
_ROLES = ("system", "user", "assistant")


class InstructionFormatError(AnymalError, ValueError):
    """A line of an instruction file that does not follow the format; the message names the file, the line and
    the fix."""


@dataclass(frozen=True)
class Check:
    """How one answer is scored (see the module docstring)."""

    # ``label``, ``yes_no`` or ``choice``.
    kind: str
    # The right answer: a class name, ``yes`` / ``no``, or one of ``options``.
    answer: str
    # ``label``: the registered data set whose labels and label parser score the answer.
    dataset: str | None = None
    # ``choice``: the options, in the order the question gives them.
    options: tuple[str, ...] = ()


def is_instruction_set(name: str) -> bool:
    """Whether ``--data NAME`` names an instruction set (a folder holding split files) rather than a registered
    ``modality:name`` data set."""
    path = Path(name)
    return path.is_dir() and any((path / f"{split}.jsonl").is_file() for split in SPLITS)


def dataset_for(name: str, registry: Registry) -> DatasetSpec:
    """What ``--data NAME`` names: an instruction set folder, else the registered data set ``NAME``."""
    return instruction_dataset(name, registry) if is_instruction_set(name) else registry.dataset(name)


def instruction_dataset(folder: str | Path, registry: Registry) -> DatasetSpec:
    """The instruction set in ``folder`` as a data set: ``build(split, **preprocessing)`` reads
    ``<split>.jsonl`` and loads every attachment with the modality's ``load`` and ``preprocess`` (given the
    options an adapter records). One adapter trains on one modality, so every attachment must be of one."""
    from .modality import DatasetSpec

    folder = Path(folder)
    if not is_instruction_set(str(folder)):
        raise InstructionFormatError(f"{folder} holds no {', '.join(s + '.jsonl' for s in SPLITS)}: write an "
                                     "instruction set with `anymal instructions` or by hand (docs/instructions.md)")
    modality = _modality_of(folder, registry)

    def build(split: str, seed: int = 0, **options: Any) -> list[dict[str, Any]]:  # noqa: ARG001 - fixed data
        return read_instructions(folder / f"{split}.jsonl", registry, modality, options)

    return DatasetSpec(name=str(folder), modality=modality, build=build,
                       description=f"instruction set in {folder}", info={"task": "instructions", "format": "jsonl"})


def read_instructions(path: str | Path, registry: Registry, modality: str | None = None,
                      preprocessing: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The conversations of one instruction file, each ``{"messages": [...], "caption": final answer,
    "check": Check | None, "task", "id"}`` with every attachment loaded and preprocessed (an
    :class:`Attachment` with ``preprocessed=True``). Attachments shared by several lines are loaded once.
    ``modality``, when given, is required of every attachment."""
    path = Path(path)
    if not path.is_file():
        raise InstructionFormatError(f"{path} does not exist: an instruction set has {', '.join(SPLITS)} files "
                                     "named <split>.jsonl; pick a split the folder has")
    options = dict(preprocessing or {})
    loaded: dict[Path, Any] = {}
    items = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InstructionFormatError(f"{where}: not JSON ({exc.msg}): write one JSON object per line") from None
            items.append(_item(record, where, path.parent, registry, modality, options, loaded))
    return items


def _item(record: Any, where: str, base: Path, registry: Registry, modality: str | None, options: dict[str, Any],
          loaded: dict[Path, Any]) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise InstructionFormatError(f"{where}: each line must be an object with 'messages'")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InstructionFormatError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    out = []
    for i, message in enumerate(messages):
        at = f"{where}: messages[{i}]"
        if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
            raise InstructionFormatError(f"{at} needs a 'role' of {', '.join(_ROLES)} and a 'content'")
        content = message.get("content")
        if isinstance(content, str):
            parts: list[Any] = [content]
        elif isinstance(content, list):
            parts = [_part(part, f"{at}.content[{j}]", base, registry, modality, options, loaded)
                     for j, part in enumerate(content)]
        else:
            raise InstructionFormatError(f"{at}.content must be a string or a list of content parts")
        out.append({"role": message["role"], "content": parts})
    last = out[-1]
    if last["role"] != "assistant" or len(last["content"]) != 1 or not isinstance(last["content"][0], str):
        raise InstructionFormatError(f"{where}: the last message must be the assistant's answer as a string (what "
                                     "training learns and evaluation compares with)")
    if not any(isinstance(p, Attachment) for m in out for p in m["content"]):
        raise InstructionFormatError(f"{where}: no attachment: an instruction for an adapter names at least one "
                                     "file ({'type': 'file', 'file': {'path': ...}})")
    return {"messages": out, "caption": last["content"][0], "check": _check(record.get("check"), where),
            "task": str(record.get("task") or "instruction"), "id": str(record.get("id") or where)}


def _part(part: Any, where: str, base: Path, registry: Registry, modality: str | None, options: dict[str, Any],
          loaded: dict[Path, Any]) -> Any:
    if not isinstance(part, Mapping) or part.get("type") not in ("text", "file"):
        raise InstructionFormatError(f"{where}: a content part is {{'type': 'text', 'text': ...}} or "
                                     "{'type': 'file', 'file': {'path': ...}}")
    if part["type"] == "text":
        if not isinstance(part.get("text"), str):
            raise InstructionFormatError(f"{where}: a text part needs a 'text' string")
        return part["text"]
    file = part.get("file")
    relative = file.get("path") if isinstance(file, Mapping) else None
    if not isinstance(relative, str) or not relative:
        raise InstructionFormatError(f"{where}: a file part needs file.path, the attachment's path relative to the "
                                     "JSONL file")
    path = (base / relative).resolve()
    if not path.is_file():
        raise InstructionFormatError(f"{where}: attachment {relative!r} does not exist (looked for {path})")
    try:
        own = registry.modality_for(path)
    except Exception as exc:  # UnsupportedAttachmentError names the plugin to install
        raise InstructionFormatError(f"{where}: {exc}") from None
    if modality is not None and own.name != modality:
        raise InstructionFormatError(f"{where}: attachment {relative!r} is {own.name}, but this instruction set "
                                     f"is {modality}: one adapter trains on one modality, so keep one per set")
    if path not in loaded:
        try:
            loaded[path] = own.preprocess(own.load(path, **options), **options)
        except Exception as exc:
            raise InstructionFormatError(f"{where}: attachment {relative!r} could not be read: {exc}") from exc
    return Attachment(loaded[path], modality=own.name, preprocessed=True)


def _check(check: Any, where: str) -> Check | None:
    if check is None:
        return None
    if (not isinstance(check, Mapping) or check.get("kind") not in CHECK_KINDS
            or not isinstance(check.get("answer"), str)):
        raise InstructionFormatError(f"{where}: 'check' must be {{'kind': one of {', '.join(CHECK_KINDS)}, "
                                     "'answer': str, ...}, or left out")
    kind, answer = check["kind"], check["answer"]
    if kind == "label" and not isinstance(check.get("dataset"), str):
        raise InstructionFormatError(f"{where}: a 'label' check names the data set whose labels score it "
                                     "('dataset': 'imu:hapt')")
    if kind == "yes_no" and answer not in ("yes", "no"):
        raise InstructionFormatError(f"{where}: a 'yes_no' check's answer is 'yes' or 'no', got {answer!r}")
    options = tuple(check.get("options") or ())
    if kind == "choice" and (answer not in options or not all(isinstance(o, str) for o in options)):
        raise InstructionFormatError(f"{where}: a 'choice' check lists its 'options' and its answer is one of them")
    return Check(kind, answer, check.get("dataset"), options)


def _modality_of(folder: Path, registry: Registry) -> str:
    """The modality of the first attachment the set's split files name (every other one must match)."""
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                relative = next(_file_paths(line), None)
                if relative is None:
                    continue
                try:
                    return registry.modality_for(relative).name
                except Exception as exc:  # UnsupportedAttachmentError names the plugin to install
                    raise InstructionFormatError(f"{path}: {exc}") from None
    raise InstructionFormatError(f"{folder}: no attachment in any split file: each conversation names at least one "
                                 "file ({'type': 'file', 'file': {'path': ...}})")


def _file_paths(line: str) -> Iterator[str]:
    """The attachment paths one JSONL line names, read leniently: a malformed line names none here, and
    :func:`read_instructions` reports it with its line number."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return
    messages = record.get("messages") if isinstance(record, Mapping) else None
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, Mapping) else None
        for part in content if isinstance(content, list) else ():
            file = part.get("file") if isinstance(part, Mapping) else None
            if isinstance(file, Mapping) and isinstance(file.get("path"), str):
                yield file["path"]


def conversation_prompt(item: Mapping[str, Any], adapter: str | None = None, *,
                        with_attachments: bool = True) -> list[dict[str, Any]]:
    """An item's conversation without its final answer (what is asked), each attachment pinned to ``adapter``;
    ``with_attachments=False`` drops them (the text-only baseline)."""
    out = []
    for message in item["messages"][:-1]:
        parts: list[Any] = []
        for part in message["content"]:
            if not isinstance(part, Attachment):
                parts.append(part)
            elif with_attachments:
                parts.append(replace(part, adapter=adapter))
        out.append({"role": message["role"], "content": parts})
    return out


def attachments_of(item: Mapping[str, Any]) -> list[Attachment]:
    """Every attachment of an item's conversation, in order."""
    return [p for m in item["messages"] for p in m["content"] if isinstance(p, Attachment)]

