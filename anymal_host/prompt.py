"""Prompt assembly: interleaved text + attachments -> ``inputs_embeds`` for the LLM.

Messages follow OpenAI's content-part style. A message's ``content`` is a string or a list of parts:

* ``{"type": "text", "text": "..."}``
* ``{"type": "attachment", "source": <path | bytes | array>, "modality": "imu"}`` (``modality`` optional for
  files: it is then chosen by file type), or an :class:`Attachment`, or the shorthand ``{"type": "imu",
  "imu": <source>}`` for any registered modality.

The conversation is rendered with the LLM's own chat template, with one placeholder per attachment. Text
between placeholders is tokenized and embedded by the LLM; each placeholder is replaced by that attachment's
projected tokens. For training, labels cover the final assistant turn only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from .llm import LLM

__all__ = ["Attachment", "EmbeddedBatch", "normalize_messages", "assemble", "IGNORE_INDEX"]

IGNORE_INDEX = -100
_PLACEHOLDER = "<anymal-attachment-{}>"
_PLACEHOLDER_RE = re.compile(r"<anymal-attachment-(\d+)>")


@dataclass
class Attachment:
    """One signal inside a message."""

    # A path, bytes, an array, or (with ``preprocessed=True``) a tensor ready for the encoder.
    source: Any
    # Modality name; None lets the host choose by file type / media type.
    modality: str | None = None
    # Name of the adapter to encode it with; None uses the modality's active adapter.
    adapter: str | None = None
    # Media type, for sources without a file name (bytes).
    media_type: str | None = None
    # True when ``source`` is already a preprocessed tensor (training batches from a data set).
    preprocessed: bool = False


@dataclass
class EmbeddedBatch:
    """What the LLM consumes."""

    inputs_embeds: torch.Tensor  # [B, L, H]
    attention_mask: torch.Tensor  # [B, L], 1 = real position
    labels: torch.Tensor | None  # [B, L], IGNORE_INDEX outside the response; None when not training


Message = Mapping[str, Any]


def normalize_messages(messages: Sequence[Message], modalities: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Messages with every attachment part turned into an :class:`Attachment` and text parts as strings."""
    normalized = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise ValueError(f"message {i} must be a mapping with 'role' and 'content', got {message!r}")
        content = message.get("content", "")
        if isinstance(content, str):
            parts: list[Any] = [content]
        elif isinstance(content, (list, tuple)):
            parts = [_normalize_part(part, modalities, i) for part in content]
        else:
            raise ValueError(f"message {i}: content must be a string or a list of parts, got {type(content).__name__}")
        normalized.append({"role": message["role"], "parts": parts})
    return normalized


def _normalize_part(part: Any, modalities: Sequence[str], index: int) -> Any:
    if isinstance(part, (str, Attachment)):
        return part
    if not isinstance(part, Mapping) or "type" not in part:
        raise ValueError(f"message {index}: a content part must be a string, an Attachment or a dict with 'type', got {part!r}")
    kind = part["type"]
    if kind == "text":
        return str(part.get("text", ""))
    if kind == "attachment":
        return Attachment(source=part["source"], modality=part.get("modality"), adapter=part.get("adapter"),
                          media_type=part.get("media_type"))
    if kind in part:  # shorthand {"type": "imu", "imu": source}
        return Attachment(source=part[kind], modality=kind, adapter=part.get("adapter"))
    raise ValueError(f"message {index}: unknown content part type {kind!r}; use 'text', 'attachment' or a modality "
                     f"name with the source under the same key (installed modalities: {', '.join(modalities) or 'none'})")


def _render(llm: LLM, messages: list[dict[str, Any]], attachments: list[Attachment], add_generation_prompt: bool) -> str:
    """The chat template's text, with a placeholder where each attachment goes."""
    flat = []
    for message in messages:
        pieces = []
        for part in message["parts"]:
            if isinstance(part, Attachment):
                pieces.append(_PLACEHOLDER.format(len(attachments)))
                attachments.append(part)
            elif part:
                pieces.append(part)
        flat.append({"role": message["role"], "content": "\n".join(pieces)})
    if llm.chat_template is None:
        raise ValueError(f"the LLM {llm.name!r} has no chat template: use an instruction-tuned model, or set "
                         "tokenizer.chat_template")
    return llm.tokenizer.apply_chat_template(flat, tokenize=False, add_generation_prompt=add_generation_prompt)


def assemble(
    llm: LLM,
    conversations: Sequence[Sequence[Message]],
    encode: Callable[[list[Attachment]], list[torch.Tensor]],
    train: bool = False,
    modalities: Sequence[str] = (),
) -> EmbeddedBatch:
    """Embed a batch of conversations.

    ``encode(attachments)`` returns one ``[N_i, H]`` tensor per attachment, in order (the host groups them by
    adapter). With ``train=False`` each conversation ends with a generation prompt and rows are left-padded
    for ``generate``; with ``train=True`` each must end with an assistant message, rows are right-padded and
    labels mark that message's tokens.
    """
    rows: list[tuple[list[str | int], list[bool]]] = []  # segments (text or attachment index), is-label flags
    attachments: list[Attachment] = []
    for conversation in conversations:
        messages = normalize_messages(conversation, modalities)
        if train:
            if not messages or messages[-1]["role"] != "assistant":
                raise ValueError("a training conversation must end with the assistant's answer")
            prompt = _render(llm, messages[:-1], attachments, add_generation_prompt=True)
            # Render again with the same placeholder numbers (a throw-away list of the same length).
            full = _render(llm, messages, [None] * (len(attachments) - _count(messages[:-1])), add_generation_prompt=False)
            if not full.startswith(prompt):
                raise ValueError(f"the chat template of {llm.name!r} does not render the prompt as a prefix of the "
                                 "full conversation; labels cannot be placed")
            segments = _split(prompt)
            response = full[len(prompt):]
            rows.append((segments + [response], [False] * len(segments) + [True]))
        else:
            segments = _split(_render(llm, messages, attachments, add_generation_prompt=True))
            rows.append((segments, [False] * len(segments)))

    encoded = encode(attachments) if attachments else []
    if len(encoded) != len(attachments):
        raise RuntimeError(f"encode returned {len(encoded)} tensors for {len(attachments)} attachments")

    embeds, labels = [], []
    for segments, flags in rows:
        pieces, piece_labels = [], []
        for segment, is_label in zip(segments, flags):
            if isinstance(segment, int):
                tokens = encoded[segment].to(llm.device, llm.dtype)
                if tokens.ndim != 2 or tokens.shape[1] != llm.hidden_size:
                    raise ValueError(f"attachment {segment} was encoded to shape {tuple(tokens.shape)}, but the LLM "
                                     f"needs [N, {llm.hidden_size}]: the adapter was built for another LLM")
                pieces.append(tokens)
                piece_labels.append(torch.full((tokens.shape[0],), IGNORE_INDEX, dtype=torch.long))
            elif segment:
                ids = torch.tensor(llm.tokenizer(segment, add_special_tokens=False)["input_ids"], dtype=torch.long)
                pieces.append(llm.embed(ids.unsqueeze(0))[0])
                piece_labels.append(ids if is_label else torch.full_like(ids, IGNORE_INDEX))
        embeds.append(torch.cat(pieces))
        labels.append(torch.cat(piece_labels))
    return _pad(embeds, labels if train else None, left=not train)


def _count(messages: list[dict[str, Any]]) -> int:
    return sum(isinstance(part, Attachment) for message in messages for part in message["parts"])


def _split(text: str) -> list[str | int]:
    """``"a<anymal-attachment-0>b"`` -> ``["a", 0, "b"]``."""
    out: list[str | int] = []
    position = 0
    for match in _PLACEHOLDER_RE.finditer(text):
        out.append(text[position:match.start()])
        out.append(int(match.group(1)))
        position = match.end()
    out.append(text[position:])
    return out


def _pad(embeds: list[torch.Tensor], labels: list[torch.Tensor] | None, left: bool) -> EmbeddedBatch:
    longest = max(e.shape[0] for e in embeds)
    hidden = embeds[0].shape[1]
    batch = embeds[0].new_zeros((len(embeds), longest, hidden))
    mask = torch.zeros(len(embeds), longest, dtype=torch.long, device=batch.device)
    label_batch = torch.full((len(embeds), longest), IGNORE_INDEX, dtype=torch.long) if labels is not None else None
    for i, e in enumerate(embeds):
        span = slice(longest - e.shape[0], longest) if left else slice(0, e.shape[0])
        batch[i, span] = e
        mask[i, span] = 1
        if label_batch is not None:
            label_batch[i, span] = labels[i]
    if label_batch is not None:
        label_batch = label_batch.to(batch.device)
    return EmbeddedBatch(batch, mask, label_batch)
