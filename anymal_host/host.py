"""``AnymalHost``: one frozen LLM, the installed modality plugins, and the adapters loaded into it."""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import torch

from .adapter import ModalityAdapter
from .errors import AdapterNotFoundError, InvalidAdapterNameError
from .llm import LLM, LLMOptions
from .plugin_helpers import package_modality
from .plugins import Registry, get_registry
from .prompt import Attachment, EmbeddedBatch, assemble, normalize_messages
from .safety import ContentRefusedError, Refusal, run_check

if TYPE_CHECKING:
    from .generation import AnswerStream
    from .loading import HostFacts

__all__ = ["AnymalHost", "AdapterSlot", "Answer", "PreparedRequest"]


@dataclass(frozen=True)
class AdapterSlot:
    """One loaded adapter and where it came from."""

    name: str
    adapter: ModalityAdapter
    source: str  # "memory", a bundled adapter's folder, or the ref it was loaded from
    # "memory" (add_adapter), "bundled" (a plugin's package), "hub" (a hub ref) or "folder" (a local package)
    kind: str = "memory"
    # The package folder it was read from (a hub's revision folder or cache snapshot), when it came from one.
    folder: str | None = None
    # The peft adapter name of the package's LoRA in the host LLM (stage-2 packages), else None.
    lora: str | None = None


@dataclass(frozen=True)
class Answer:
    """One conversation's outcome from :meth:`AnymalHost.respond`."""

    # the generated text; empty when the request was refused
    text: str
    # "stop" (the answer ended), "length" (it reached max_new_tokens), "content_filter" (a safety check refused)
    finish_reason: str = "stop"
    # which check refused it and why (None when answered)
    refusal: Refusal | None = None
    # positions the LLM read: the rendered prompt with every attachment's tokens (0 when refused before it)
    prompt_tokens: int = 0
    # tokens of the answer (0 when refused)
    completion_tokens: int = 0
    # of the prompt's positions, those the attachments' projected tokens took
    attachment_tokens: int = 0


@dataclass(frozen=True)
class PreparedRequest:
    """One request ready for the LLM (:meth:`AnymalHost.prepare`): its messages with every attachment pinned to
    its preprocessed signal and adapter, each attachment's projected tokens, and the ``(modality, signal)``
    pairs the output checks see; or its refusal."""

    conversation: list[dict[str, Any]]
    attachments: list[Attachment]
    tokens: list[torch.Tensor]
    signals: list[tuple[str, torch.Tensor]]
    refusal: Refusal | None = None
    # The LoRA the LLM answers this request with: that of the stage-2 adapter encoding its attachments, if any.
    lora: str | None = None

    @property
    def adapters(self) -> dict[str, str]:
        """The adapter that encoded each modality's attachments, by modality (what a server reports back)."""
        return {a.modality: a.adapter for a in self.attachments if a.modality and a.adapter}


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
        self._facts: HostFacts | None = None
        self.registry = registry or get_registry()
        self._state = _State()
        self._swap_lock = threading.Lock()
        self._bundled_lock = threading.Lock()
        self._lora_ids = itertools.count(1)

    # ----- the LLM --------------------------------------------------------------------------------------

    @property
    def llm(self) -> LLM:
        """The host LLM, loaded on first use and never reloaded."""
        with self._llm_lock:
            if self._llm is None:
                quantization = self._llm_options.quantization if self._llm_options else None
                if quantization:
                    from .extras import require_extra

                    require_extra("quantize", f"loading the LLM {quantization}")
                self._llm = LLM.load(self._llm_name, self._llm_options)
            return self._llm

    @property
    def llm_name(self) -> str:
        """The LLM's name without loading it: the loaded LLM's, else the one asked for ($ANYMAL_LLM or the
        embedded default when none was)."""
        if self._llm is not None:
            return self._llm.name
        from .llm import resolve_llm_name

        requested = resolve_llm_name(self._llm_name)
        if requested is None:
            from .default_llm import DEFAULT_LLM_NAME

            return DEFAULT_LLM_NAME
        return str(requested)

    @property
    def facts(self) -> "HostFacts":
        """What adapter packages are checked against: the LLM's hidden size, fingerprint, name and token scale
        (computed once; the LLM never changes)."""
        if self._facts is None:
            from .loading import HostFacts

            self._facts = HostFacts.of(self.llm)
        return self._facts

    # ----- adapters -------------------------------------------------------------------------------------

    @property
    def adapters(self) -> Mapping[str, AdapterSlot]:
        """The loaded adapters by name (a read-only snapshot)."""
        return self._state.slots

    def active_adapter_name(self, modality: str) -> str | None:
        return self._state.active.get(modality)

    def add_adapter(self, adapter: ModalityAdapter, name: str | None = None, source: str = "memory",
                    activate: bool = True, *, kind: str = "memory", folder: str | None = None) -> str:
        """Put a built adapter in place under ``name`` (default: its config's name), atomically.

        An adapter already loaded under ``name`` is replaced: requests in flight finish on the one they started
        with, new requests see this one. ``activate`` makes it the adapter its modality's attachments use by
        default (the first adapter of a modality is always activated)."""
        name = _adapter_name(name if name is not None else adapter.config.name)
        adapter.to(self.llm.device).eval()
        self._put(AdapterSlot(name, adapter, source, kind, folder), activate)
        return name

    def _put(self, slot: AdapterSlot, activate: bool) -> None:
        with self._swap_lock:
            slots = dict(self._state.slots)
            active = dict(self._state.active)
            replaced = slots.get(slot.name)
            slots[slot.name] = slot
            modality = slot.adapter.config.modality
            if activate or modality not in active:
                active[modality] = slot.name
            # a replaced adapter of another modality must not stay active for its old modality
            for other, name in list(active.items()):
                if name == slot.name and other != modality:
                    del active[other]
                    fallback = next((s.name for s in slots.values() if s.adapter.config.modality == other), None)
                    if fallback is not None:
                        active[other] = fallback
            self._state = _State(MappingProxyType(slots), MappingProxyType(active))
        if replaced is not None and replaced.lora is not None and replaced.lora != slot.lora:
            self.llm.loras.remove(replaced.lora)  # waits for generations in flight, then frees its weights

    def _load_lora(self, adapter: ModalityAdapter, folder: str | os.PathLike[str], name: str) -> str | None:
        """Check a stage-2 package's ``lora/`` against this LLM and load it beside the other LoRAs, under a
        fresh peft adapter name (so that a replaced package's LoRA serves its requests in flight until the swap);
        None for a package without one."""
        if adapter.config.lora is None:
            return None
        from adapters_hub import LORA_DIR

        from .lora import check_lora, read_lora_weights

        spec = check_lora(Path(folder) / LORA_DIR, self.llm.model)
        weights = read_lora_weights(spec)
        lora = f"{name}-lora{next(self._lora_ids)}".replace(".", "_")  # peft's module dicts refuse dots
        self.llm.loras.add(lora, spec, weights)
        return lora

    def _put_with_lora(self, adapter: ModalityAdapter, name: str, source: str, kind: str, folder: str,
                       activate: bool) -> AdapterSlot:
        """Put a package's adapter in place with its LoRA (if any) loaded first; nothing is left of either when
        something fails."""
        lora = self._load_lora(adapter, folder, name)
        slot = AdapterSlot(name, adapter, source, kind, folder, lora)
        try:
            adapter.to(self.llm.device).eval()
            self._put(slot, activate)
        except BaseException:
            if lora is not None:
                self.llm.loras.remove(lora)
            raise
        return slot

    def load_adapter(self, ref: str | os.PathLike[str], name: str | None = None, force: bool = False,
                     cache_dir: str | os.PathLike[str] | None = None, *, activate: bool = True,
                     hf_endpoint: str | None = None, token: str | bool | None = None) -> str:
        """Hot-load the adapter package ``ref`` into the running host; returns the name it is loaded under.

        ``ref``: ``org/name[@rev]`` or ``hf://org/name[@rev]`` (Hugging Face Hub, downloaded into ``cache_dir``,
        default ``$ANYMAL_HOME/adapters``; ``hf_endpoint`` default ``$HF_ENDPOINT``), ``file:///root/org/name[@rev]``
        or ``/root/org/name@rev`` (folder hub, read in place: its revisions are immutable), or a package folder.

        The package is resolved, checked before any weight is read (file safety, schema, modality plugin,
        hidden size, LLM fingerprint: ``force=True`` accepts another checkpoint of the same-size LLM with a
        warning), built through its plugin and loaded strictly, all off to the side; only then is it swapped in
        (see :meth:`add_adapter`). Any failure raises (an ``adapters_hub.AdapterPackageError`` for a bad or
        incompatible package) and leaves the host serving exactly what it served before. The LLM is not
        reloaded. A stage-2 package's LoRA is checked against the LLM and loaded beside the other LoRAs: requests
        whose attachments this adapter encodes are answered with it, every other request by the frozen LLM
        (see :mod:`anymal_host.lora`).
        """
        from adapters_hub import parse_ref, resolve

        from .loading import build_adapter

        if name is not None:
            _adapter_name(name)  # refused before anything is downloaded
        parsed = parse_ref(ref)
        if parsed.kind == "hf" and cache_dir is None:
            from .paths import anymal_home

            cache_dir = anymal_home() / "adapters"
        folder = resolve(parsed, cache_dir=cache_dir, hf_endpoint=hf_endpoint or os.environ.get("HF_ENDPOINT") or None,
                         token=token)
        adapter = build_adapter(folder, self.registry, self.facts, force=force)
        return self._put_with_lora(adapter, _adapter_name(name if name is not None else adapter.config.name),
                                   str(ref), "folder" if parsed.kind == "local" else "hub", str(folder),
                                   activate).name

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
        if removed.lora is not None:
            self.llm.loras.remove(removed.lora)  # its LoRA weights go too, once no generation is running

    def list_adapters(self, *, include_bundled: bool = True, load_llm: bool = False) -> list[dict[str, Any]]:
        """The loaded adapters, then the plugins' bundled adapters not loaded yet (what a request of their
        modality would load), one dict each: ``name``, ``modality``, ``kind`` (memory / bundled / hub /
        folder), ``source``, ``folder``, ``revision``, ``loaded``, ``active``, ``projector``, ``num_tokens``,
        ``token_mode``, ``tokens`` (the count as text), ``llm``, ``fingerprint_match`` (None when the host LLM is not loaded and ``load_llm`` is False),
        ``has_lora`` and ``error`` (why a bundled package cannot be read, else None)."""
        state = self._state
        host_fp = self.llm.fingerprint if (load_llm or self._llm is not None) else None
        rows: list[dict[str, Any]] = []
        for slot in state.slots.values():
            config = slot.adapter.config
            rows.append(_row(slot.name, config, slot.kind, slot.source, slot.folder, True,
                             state.active.get(config.modality) == slot.name, host_fp))
        if include_bundled:
            from adapters_hub import read_package_config

            for name, folder in sorted(self.registry.bundled_adapters.items()):
                if name in state.slots:
                    continue
                try:
                    config = read_package_config(folder)
                except ValueError as e:
                    rows.append({"name": name, "kind": "bundled", "source": str(folder), "folder": str(folder),
                                 "loaded": False, "active": False, "error": str(e)})
                    continue
                rows.append(_row(name, config, "bundled", str(folder), str(folder), False, False, host_fp))
        return rows

    def _adapter_for(self, state: _State, attachment: Attachment) -> tuple[_State, AdapterSlot]:
        """The adapter that encodes ``attachment`` in the request's snapshot ``state``.

        A modality the snapshot has no adapter for gets its plugin's bundled adapter, loaded into the host on
        first need; the request's view is ``state`` plus that one slot (never a newer global snapshot), so every
        other attachment of the request is still encoded with the adapters it started with."""
        if attachment.adapter is not None:
            if attachment.adapter not in state.slots:
                raise AdapterNotFoundError(f"no adapter named {attachment.adapter!r} is loaded "
                                           f"(loaded: {', '.join(state.slots) or 'none'}): load it with load_adapter / --adapter")
            return state, state.slots[attachment.adapter]
        modality = self.modality_of(attachment)
        if modality not in state.active:
            slot = self._bundled_slot(modality)
            state = _State(MappingProxyType({**state.slots, slot.name: slot}),
                           MappingProxyType({**state.active, modality: slot.name}))
        return state, state.slots[state.active[modality]]

    def _bundled_slot(self, modality: str) -> AdapterSlot:
        """The bundled adapter of ``modality``: the one already loaded, else built and added (not activated over
        an adapter loaded meanwhile). One build at a time, so concurrent first requests build it once."""
        candidates = sorted((n, p) for n, p in self.registry.bundled_adapters.items() if package_modality(p) == modality)
        if not candidates:
            plugin = self.registry.provider("modality", modality)
            raise AdapterNotFoundError(
                f"no adapter is loaded for modality {modality!r} and plugin {plugin!r} bundles none: load one with "
                "host.load_adapter(REF) / `anymal chat --adapter REF`, or train one with `anymal train align`"
            )
        from .loading import build_adapter  # late import: hub code is only needed here

        name, folder = candidates[0]
        with self._bundled_lock:
            loaded = self._state.slots.get(name)
            if loaded is not None and loaded.kind == "bundled" and loaded.folder == str(folder):
                return loaded
            adapter = build_adapter(folder, self.registry, self.facts)
            return self._put_with_lora(adapter, name, str(folder), "bundled", str(folder), activate=False)

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
                encoded = adapter.encode_preprocessed([a.source for a in group])
            else:
                encoded = adapter.encode([a.source for a in group])
            for i, tokens in zip(indices, encoded):
                out[i] = tokens
        return out  # type: ignore[return-value]

    def generate(self, conversations: Sequence[Sequence[Mapping[str, Any]]], max_new_tokens: int = 64,
                 **generate_kwargs: Any) -> list[str]:
        """Answer a batch of conversations; every attachment is encoded with the adapters of one snapshot.
        Raises :class:`~anymal_host.safety.ContentRefusedError` when a safety check refuses one of them (use
        :meth:`respond` to get the other answers as well)."""
        answers = self.respond(conversations, max_new_tokens=max_new_tokens, **generate_kwargs)
        for answer in answers:
            if answer.refusal is not None:
                raise ContentRefusedError(answer.refusal)
        return [answer.text for answer in answers]

    def respond(self, conversations: Sequence[Sequence[Mapping[str, Any]]], max_new_tokens: int = 64,
                **generate_kwargs: Any) -> list[Answer]:
        """Answer a batch of conversations through the safety hooks: one :class:`Answer` each, in order.

        Each conversation's text goes through ``check_input_text`` and each attachment, once loaded and
        preprocessed, through ``check_input_signal``; the conversations nothing refused are generated together
        (every attachment encoded with the adapters of the snapshot taken when this call began), and each
        answer goes through ``check_output_text`` and ``check_signals_and_output``. A refused conversation's
        answer has ``finish_reason == "content_filter"`` and its :class:`~anymal_host.safety.Refusal`.
        Unreadable attachments and unknown adapters still raise, as in :meth:`embed`.
        Same as :meth:`answer` over :meth:`prepare` of each conversation, with one snapshot for all.
        """
        state = self._state
        prepared = []
        for conversation in conversations:
            state, request = self._prepare(state, conversation)
            prepared.append(request)
        return self.answer(prepared, max_new_tokens=max_new_tokens, **generate_kwargs)

    def prepare(self, conversation: Sequence[Mapping[str, Any]]) -> PreparedRequest:
        """Everything of one request that comes before the LLM: the input safety checks, and each attachment
        loaded, preprocessed and encoded with the adapters of the snapshot read now. A server prepares each
        request as it arrives, so a later adapter swap cannot change it, then answers many together
        (:meth:`answer`). A refused request carries its refusal and no tokens."""
        return self._prepare(self._state, conversation)[1]

    def _prepare(self, state: _State, conversation: Sequence[Mapping[str, Any]]) -> tuple[_State, PreparedRequest]:
        messages = normalize_messages(conversation, sorted(self.registry.modalities))
        text = "\n".join(part for message in messages for part in message["parts"] if isinstance(part, str))
        refusal = run_check(self.registry, "check_input_text", text=text)
        signals: list[tuple[str, torch.Tensor]] = []
        if refusal is None:
            state, messages, signals, refusal = self._checked_signals(state, messages)
        if refusal is not None:
            return state, PreparedRequest([], [], [], signals, refusal)
        attachments = [part for message in messages for part in message["parts"] if isinstance(part, Attachment)]
        lora = _request_lora(state, attachments)
        with torch.inference_mode():
            tokens = self._encode(state, attachments) if attachments else []
        conversation_out = [{"role": m["role"], "content": m["parts"]} for m in messages]
        return state, PreparedRequest(conversation_out, attachments, tokens, signals, lora=lora)

    def answer(self, requests: Sequence[PreparedRequest], max_new_tokens: int = 64,
               **generate_kwargs: Any) -> list[Answer]:
        """Generate the answers of prepared requests as one LLM batch, then run the output safety checks on
        each: one :class:`Answer` per request, in order (a request refused while prepared is not generated).
        ``generate_kwargs`` go to the LLM's ``generate`` (``do_sample``, ``temperature``, ``top_p``...)."""
        answers = [None if r.refusal is None else Answer("", "content_filter", r.refusal) for r in requests]
        admitted = [(i, r) for i, r in enumerate(requests) if r.refusal is None]
        if admitted:
            with torch.inference_mode():
                batch = self._assemble([r for _, r in admitted])
                texts = self.llm.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=max_new_tokens,
                                          loras=[r.lora for _, r in admitted], **generate_kwargs)
            prompt_lengths = batch.attention_mask.sum(dim=1).tolist()
            for (i, request), text, prompt_length in zip(admitted, texts, prompt_lengths):
                answers[i] = self._checked_answer(request, text, int(prompt_length), max_new_tokens)
        return answers  # type: ignore[return-value]

    def stream(self, conversation: Sequence[Mapping[str, Any]], max_new_tokens: int = 64,
               **generate_kwargs: Any) -> "AnswerStream":
        """Answer one conversation piece by piece as the LLM writes it: iterate the returned
        :class:`~anymal_host.generation.AnswerStream` for text; its ``answer`` is the whole :class:`Answer` once
        it is exhausted. The input checks run first (a refusal raises
        :class:`~anymal_host.safety.ContentRefusedError` before anything is generated); the output checks see
        every prefix of the answer before it is yielded, and a refusal stops generation and raises."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        from .generation import AnswerStream

        request = self.prepare(conversation)
        if request.refusal is not None:
            raise ContentRefusedError(request.refusal)
        with torch.inference_mode():
            batch = self._assemble([request])
        streamer = TextIteratorStreamer(self.llm.tokenizer, skip_prompt=True, skip_special_tokens=True)

        class _StopWhenSet(StoppingCriteria):
            def __init__(self, event: threading.Event) -> None:
                self.event = event

            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> bool:
                return self.event.is_set()

        def run(stop: threading.Event) -> None:
            self.llm.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=max_new_tokens,
                              streamer=streamer, stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
                              loras=[request.lora], **generate_kwargs)

        def check(text: str) -> Refusal | None:
            return self._output_refusal(request, text)

        def finish(text: str) -> Answer:
            return self._checked_answer(request, text, int(batch.attention_mask.sum()), max_new_tokens)

        return AnswerStream(streamer, run, check, finish, adapters=request.adapters)

    def _assemble(self, requests: Sequence[PreparedRequest]) -> EmbeddedBatch:
        """The LLM batch of prepared requests, each attachment's tokens where it stands."""
        tokens = {id(a): t for r in requests for a, t in zip(r.attachments, r.tokens)}
        return assemble(self.llm, [r.conversation for r in requests],
                        lambda attachments: [tokens[id(a)] for a in attachments],
                        modalities=sorted(self.registry.modalities))

    def _output_refusal(self, request: PreparedRequest, text: str) -> Refusal | None:
        return (run_check(self.registry, "check_output_text", text=text)
                or run_check(self.registry, "check_signals_and_output", signals=request.signals, text=text))

    def _checked_answer(self, request: PreparedRequest, text: str, prompt_length: int, max_new_tokens: int) -> Answer:
        """The :class:`Answer` of generated ``text`` once the output checks have seen it, with its usage."""
        refusal = self._output_refusal(request, text)
        completion = len(self.llm.tokenizer(text, add_special_tokens=False)["input_ids"])
        usage = {"prompt_tokens": prompt_length, "completion_tokens": 0 if refusal else completion,
                 "attachment_tokens": sum(int(t.shape[0]) for t in request.tokens)}
        if refusal is not None:
            return Answer("", "content_filter", refusal, **usage)
        return Answer(text, "length" if completion >= max_new_tokens else "stop", **usage)

    def _checked_signals(self, state: _State, messages: list[dict[str, Any]]
                         ) -> tuple[_State, list[dict[str, Any]], list[tuple[str, torch.Tensor]], Refusal | None]:
        """Load and preprocess every attachment of one conversation with the adapter that will encode it, and
        run ``check_input_signal`` on each. Returns the snapshot (plus any bundled adapter this needed), the
        messages with each attachment replaced by its preprocessed signal pinned to that adapter, the
        ``(modality, signal)`` pairs, and the first refusal (None if none)."""
        signals: list[tuple[str, torch.Tensor]] = []
        out = []
        for message in messages:
            parts = []
            for part in message["parts"]:
                if isinstance(part, Attachment):
                    state, slot = self._adapter_for(state, part)
                    modality = slot.adapter.modality
                    signal = part.source
                    if not part.preprocessed:
                        options = slot.adapter.config.preprocessing
                        signal = modality.preprocess(modality.load(part.source, **options), **options)
                    refusal = run_check(self.registry, "check_input_signal", modality=modality.name, signal=signal)
                    if refusal is not None:
                        return state, messages, signals, refusal
                    signals.append((modality.name, signal))
                    part = Attachment(source=signal, modality=modality.name, adapter=slot.name, preprocessed=True)
                parts.append(part)
            out.append({"role": message["role"], "parts": parts})
        return state, out, signals, None

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


def _row(name: str, config: Any, kind: str, source: str, folder: str | None, loaded: bool, active: bool,
         host_fp: str | None) -> dict[str, Any]:
    return {
        "name": name, "modality": config.modality, "kind": kind, "source": source, "folder": folder,
        "revision": Path(folder).name if kind == "hub" and folder else None, "loaded": loaded, "active": active,
        "projector": config.projector.type, "num_tokens": config.num_tokens, "token_mode": config.token_mode,
        "tokens": config.tokens_text(), "llm": config.llm.name,
        "fingerprint_match": None if host_fp is None else config.llm.fingerprint == host_fp,
        "has_lora": config.lora is not None, "error": None,
    }


def _request_lora(state: _State, attachments: Sequence[Attachment]) -> str | None:
    """The LoRA a request is answered with: that of the stage-2 adapters encoding its attachments. One request
    runs through one LLM, so attachments whose adapters carry different LoRAs cannot share it."""
    owners = {a.adapter: state.slots[a.adapter].lora for a in attachments
              if a.adapter in state.slots and state.slots[a.adapter].lora is not None}
    if len(set(owners.values())) > 1:
        raise ValueError(f"the attachments of one request use adapters {', '.join(sorted(owners))}, each with its "
                         f"own LoRA for the LLM: one request is answered with one LoRA, so send them in separate "
                         f"requests (or use stage-1 adapters of all but one)")
    return next(iter(owners.values()), None)


def _adapter_name(name: str) -> str:
    """The name an adapter is listed and chosen by: refused when empty or unprintable."""
    from adapters_hub.validate import validate_adapter_name

    try:
        return validate_adapter_name(name)
    except ValueError as e:
        raise InvalidAdapterNameError(str(e)) from None
