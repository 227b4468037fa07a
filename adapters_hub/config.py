"""``anymal_adapter.json``: what an adapter package is, and what it was trained for."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "AdapterConfig", "EncoderRef", "LLMRef", "ProjectorSpec"]

#: Version of the package layout and of this config's keys. Bump it on an incompatible change and add a
#: migration for the old one.
SCHEMA_VERSION = 1


#: Projector types whose output is one token per encoder step: what a config that records no ``token_mode``
#: (written before it existed) is read as.
PER_STEP_PROJECTORS = frozenset({"linear", "mlp"})


def tokens_text(token_mode: str | None, num_tokens: int, projector_type: str = "") -> str:
    """How many tokens an attachment becomes, in words, for every listing and model card."""
    if token_mode == "per_step":
        return f"1 token per encoder step ({num_tokens} for the example input)"
    if token_mode is None and projector_type in PER_STEP_PROJECTORS:
        return "1 token per encoder step"
    return f"{num_tokens} tokens"


@dataclass
class EncoderRef:
    """Which encoder the adapter uses and where its weights come from."""

    # Encoder architecture name as the modality plugin knows it (e.g. ``imu-conv-transformer``).
    name: str
    # Keyword arguments the modality's ``build_encoder`` takes (widths, depths, pretrained source...).
    config: dict[str, Any] = field(default_factory=dict)
    # True when ``adapter.safetensors`` carries the encoder weights (``encoder.*``); False when the plugin
    # supplies them (a frozen pretrained encoder that ships with the plugin).
    weights_included: bool = True
    # Whether training updates the encoder (stage 1 may freeze it and train only the projector).
    trainable: bool = True


@dataclass
class ProjectorSpec:
    """The projector between encoder features and the LLM's embedding space."""

    # Registered projector type: ``linear``, ``mlp``, ``perceiver`` or one a plugin adds.
    type: str
    # Encoder feature width D.
    in_dim: int
    # LLM hidden size H (the projector's output width).
    out_dim: int
    # Extra keyword arguments for the projector factory (depth, heads, hidden_dim...).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LLMRef:
    """The LLM whose embedding space the adapter was trained against."""

    # Hub id or local name of the LLM (``HuggingFaceTB/SmolLM2-135M-Instruct``).
    name: str
    # Hidden size H: the width of every projected token.
    hidden_size: int
    # Hash of what defines the embedding space (see ``anymal_host.llm.LLM.fingerprint``).
    fingerprint: str
    # Revision (commit or tag) of the LLM, when known.
    revision: str | None = None
    # Root mean square of the LLM's input token embeddings, when recorded: lets a package be checked for token
    # scale (see ``anymal_host.loading``) where that LLM is not loaded, as ``anymal hub push`` does.
    embedding_rms: float | None = None


@dataclass
class AdapterConfig:
    """The contents of ``anymal_adapter.json``."""

    # Adapter name (the default name it is loaded under).
    name: str
    # Modality name; the modality's plugin must be installed to load the adapter.
    modality: str
    # The encoder and where its weights come from.
    encoder: EncoderRef
    # The projector type and sizes.
    projector: ProjectorSpec
    # The LLM it was trained against.
    llm: LLMRef
    # Number of tokens one attachment becomes: exactly this many when ``token_mode`` is ``fixed`` (a Perceiver
    # resampler); the count for the modality's example input when it is ``per_step`` (linear / MLP projectors
    # emit one token per encoder step, so longer signals become more tokens).
    num_tokens: int
    # Options passed to the modality's ``load`` / ``preprocess`` (sample rate, window, normalisation...).
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # peft LoRA config as a dict when the package has a ``lora/`` folder, else None.
    lora: dict[str, Any] | None = None
    # Evaluation figures (``{"activity_accuracy": 0.91, ...}``), repeated in the model card.
    metrics: dict[str, Any] = field(default_factory=dict)
    # Free text for the model card: data, training command, licence notes.
    description: str = ""
    # anymal version that wrote the package.
    anymal_version: str = "0.1.0"
    # Layout version of the package.
    schema_version: int = SCHEMA_VERSION
    # ``fixed`` or ``per_step``: how ``num_tokens`` is to be read (see above); None when the writer did not
    # record it (packages written before it existed, or by code that builds configs by hand): such packages
    # load as before, with a warning, and the host measures what the projector does. Training records it.
    token_mode: str | None = None

    def tokens_text(self) -> str:
        """The token count as a person should read it (``"64 tokens"``, ``"1 token per encoder step (32 for the
        example input)"``)."""
        return tokens_text(self.token_mode, self.num_tokens, self.projector.type)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdapterConfig":
        data = dict(data)
        data["encoder"] = EncoderRef(**data["encoder"])
        data["projector"] = ProjectorSpec(**data["projector"])
        data["llm"] = LLMRef(**data["llm"])
        return cls(**data)
