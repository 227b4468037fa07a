"""``AnymalHost``: one frozen LLM, the installed modality plugins, and the adapters loaded into it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import torch

from .adapter import ModalityAdapter
from .errors import AdapterNotFoundError
from .llm import LLM, LLMOptions
from .plugins import Registry, get_registry
from .prompt import Attachment, EmbeddedBatch, assemble

__all__ = ["AnymalHost", "AdapterSlot"]


@dataclass(frozen=True)
class AdapterSlot:
    """One loaded adapter and where it came from."""

    name: str
    adapter: ModalityAdapter
    source: str  # "memory", a bundled adapter's folder, or a hub ref


@dataclass(frozen=True)
class _State:
    """An immutable snapshot: a request reads one and keeps it, so a swap never changes it mid-generation."""

    slots: Mapping[str, AdapterSlot] = field(default_factory=lambda: MappingProxyType({}))
    active: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # modality -> adapter name


class AnymalHost:
    """A frozen LLM with senses.

    >>> host = AnymalHost()                       # the embedded default LLM, loaded on first use
    >>> host.chat("What is the capital of France?")
    'The capital of France is Paris.'
    """

    def __init__(self, llm: LLM | str | os.PathLike[str] | None = None, *, llm_options: LLMOptions | None = None,
                 registry: Registry | None = None) -> None:
        self._llm = llm if isinstance(llm, LLM) else None
        self._llm_name = None if isinstance(llm, LLM) else llm
        self._llm_options = llm_options
        self._llm_lock = threading.Lock()
        self.registry = registry or get_registry()
        self._state = _State()
        self._swap_lock = threading.Lock()

    # ----- the LLM --------------------------------------------------------------------------------------

    @property
    def llm(self) -> LLM:
        """The host LLM, loaded on first use and never reloaded."""
        with self._llm_lock:
            if self._llm is None:
                self._llm = LLM.load(self._llm_name, self._llm_options)
            return self._llm

    # ----- adapters -------------------------------------------------------------------------------------

    @property
    def adapters(self) -> Mapping[str, AdapterSlot]:
        """The loaded adapters by name (a read-only snapshot)."""
        return self._state.slots

    def active_adapter_name(self, modality: str) -> str | None:
        return self._state.active.get(modality)

    def add_adapter(self, adapter: ModalityAdapter, name: str | None = None, source: str = "memory",
                    activate: bool = True) -> str:
        """Put a built adapter in place under ``name`` (default: its config's name), atomically."""
        name = name or adapter.config.name
        adapter.to(self.llm.device).eval()
        with self._swap_lock:
            slots = dict(self._state.slots)
            active = dict(self._state.active)
            slots[name] = AdapterSlot(name, adapter, source)
            if activate or adapter.config.modality not in active:
                active[adapter.config.modality] = name
            self._state = _State(MappingProxyType(slots), MappingProxyType(active))
        return name

    def unload_adapter(self, name: str) -> None:
        """Remove an adapter; requests already running keep it until they finish."""
        with self._swap_lock:
            if name not in self._state.slots:
                raise AdapterNotFoundError(f"no adapter named {name!r} is loaded (loaded: {', '.join(self._state.slots) or 'none'})")
            slots = dict(self._state.slots)
            removed = slots.pop(name)
            active = {m: n for m, n in self._state.active.items() if n != name}
            modality = removed.adapter.config.modality
            if modality not in active:  # fall back to another adapter of the same modality, if any
                for other in slots.values():
                    if other.adapter.config.modality == modality:
                        active[modality] = other.name
                        break
            self._state = _State(MappingProxyType(slots), MappingProxyType(active))

    def _adapter_for(self, state: _State, attachment: Attachment) -> tuple[_State, AdapterSlot]:
        """The adapter that encodes ``attachment``; a bundled adapter is loaded on first need."""
        if attachment.adapter is not None:
            if attachment.adapter not in state.slots:
                raise AdapterNotFoundError(f"no adapter named {attachment.adapter!r} is loaded "
                                           f"(loaded: {', '.join(state.slots) or 'none'}): load it with load_adapter / --adapter")
            return state, state.slots[attachment.adapter]
        modality = self.modality_of(attachment)
        if modality not in state.active:
            self._load_bundled(modality)
            state = self._state
        return state, state.slots[state.active[modality]]

    def _load_bundled(self, modality: str) -> None:
        candidates = [(n, p) for n, p in self.registry.bundled_adapters.items() if _folder_modality(p) == modality]
        if not candidates:
            plugin = self.registry.provider("modality", modality)
            raise AdapterNotFoundError(
                f"no adapter is loaded for modality {modality!r} and plugin {plugin!r} bundles none: load one with "
                "host.load_adapter(REF) / `anymal chat --adapter REF`, or train one with `anymal train align`"
            )
        from .loading import build_adapter_from_folder  # late import: hub code is only needed here

        name, folder = sorted(candidates)[0]
        adapter = build_adapter_from_folder(folder, self)
        self.add_adapter(adapter, name=name, source=str(folder), activate=False)

    def modality_of(self, attachment: Attachment) -> str:
        if attachment.modality is not None:
            return self.registry.modality(attachment.modality).name
        path = attachment.source if isinstance(attachment.source, (str, os.PathLike)) else None
        if path is None and attachment.media_type is None:
            raise ValueError("an attachment that is not a file needs its modality (or media_type) named")
        return self.registry.modality_for(path, attachment.media_type).name

    # ----- requests -------------------------------------------------------------------------------------

    def embed(self, conversations: Sequence[Sequence[Mapping[str, Any]]], train: bool = False) -> EmbeddedBatch:
        """Embed a batch of conversations (see :mod:`anymal_host.prompt`)."""
        state = self._state
        return assemble(self.llm, conversations, lambda atts: self._encode(state, atts), train=train,
                        modalities=sorted(self.registry.modalities))

    def _encode(self, state: _State, attachments: list[Attachment]) -> list[torch.Tensor]:
        """Group attachments by adapter and encode each group as one batch."""
        groups: dict[str, list[int]] = {}
        slots: dict[str, AdapterSlot] = {}
        for i, attachment in enumerate(attachments):
            state, slot = self._adapter_for(state, attachment)
            slots[slot.name] = slot
            groups.setdefault(slot.name, []).append(i)
        out: list[torch.Tensor | None] = [None] * len(attachments)
        for name, indices in groups.items():
            adapter = slots[name].adapter
            group = [attachments[i] for i in indices]
            if all(a.preprocessed for a in group):
                signals, mask = adapter.modality.collate([a.source for a in group])
                device = next(adapter.parameters()).device
                tokens, token_mask = adapter(signals.to(device), mask.to(device))
                encoded = [t[m] for t, m in zip(tokens, token_mask)]
            else:
                encoded = adapter.encode([a.source for a in group])
            for i, tokens in zip(indices, encoded):
                out[i] = tokens
        return out  # type: ignore[return-value]

    def generate(self, conversations: Sequence[Sequence[Mapping[str, Any]]], max_new_tokens: int = 64,
                 **generate_kwargs: Any) -> list[str]:
        """Answer a batch of conversations; every attachment is encoded with the adapters of one snapshot."""
        with torch.inference_mode():
            batch = self.embed(conversations)
            return self.llm.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=max_new_tokens,
                                     **generate_kwargs)

    def chat(self, prompt: str | Sequence[Mapping[str, Any]], attachments: Iterable[Any] = (),
             max_new_tokens: int = 64, system: str | None = None, **generate_kwargs: Any) -> str:
        """One answer. ``prompt`` is a user message (attachments go before its text) or a list of messages."""
        if isinstance(prompt, str):
            parts: list[Any] = [a if isinstance(a, Attachment) else Attachment(source=a) for a in attachments]
            parts.append(prompt)
            messages: list[Mapping[str, Any]] = [{"role": "user", "content": parts}]
        else:
            if attachments:
                raise ValueError("pass attachments inside the messages when prompt is a list of messages")
            messages = list(prompt)
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        return self.generate([messages], max_new_tokens=max_new_tokens, **generate_kwargs)[0]


def _folder_modality(folder: Path) -> str | None:
    import json

    try:
        return json.loads((Path(folder) / "anymal_adapter.json").read_text())["modality"]
    except (OSError, ValueError, KeyError):
        return None
