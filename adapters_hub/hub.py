"""The interface every hub implements, and the summaries its listings return."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .config import AdapterConfig

__all__ = ["Hub", "AdapterSummary", "RepoInfo", "DEFAULT_COMMIT_MESSAGE"]

DEFAULT_COMMIT_MESSAGE = "Upload anymal adapter"


@dataclass(frozen=True)
class AdapterSummary:
    """What a listing shows of one adapter: enough to choose it, without downloading weights."""

    # ``org/name`` on the hub.
    repo: str
    # The revision the summary was read at (commit hash / content hash).
    revision: str | None
    # Adapter name from the config.
    name: str
    # Modality (the plugin needed: ``anymal-plugin-<modality>``).
    modality: str
    # LLM the adapter was trained against, its hidden size and embedding-space fingerprint.
    llm_name: str
    llm_hidden_size: int
    llm_fingerprint: str
    # Tokens per attachment and projector type.
    num_tokens: int
    projector: str
    # Whether the package carries a LoRA for the LLM.
    has_lora: bool
    # Evaluation figures from the config.
    metrics: dict[str, Any] = field(default_factory=dict)
    # anymal version and schema that wrote the package.
    anymal_version: str = ""
    schema_version: int = 0

    @classmethod
    def from_config(cls, repo: str, revision: str | None, config: AdapterConfig) -> "AdapterSummary":
        return cls(repo, revision, config.name, config.modality, config.llm.name, config.llm.hidden_size,
                   config.llm.fingerprint, config.num_tokens, config.projector.type, config.lora is not None,
                   dict(config.metrics), config.anymal_version, config.schema_version)


@dataclass(frozen=True)
class RepoInfo:
    """One repo at one revision."""

    # ``org/name``.
    repo: str
    # The resolved revision (commit / content hash) that ``revision`` (a branch, tag or hash) named.
    revision: str
    # The adapter's summary at that revision.
    summary: AdapterSummary
    # Package files at that revision (relative POSIX paths).
    files: list[str]
    # Commit message of that revision, when the hub records one.
    commit_message: str | None = None
    # Every revision of the repo, newest first (what ``@revision`` may pin).
    revisions: list[str] = field(default_factory=list)


@runtime_checkable
class Hub(Protocol):
    """Where adapter packages are published and pulled from. Implemented by ``HFHub`` (Hugging Face Hub) and
    ``FolderHub`` (a local or shared folder); the host and the CLI only use this interface."""

    def push(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE) -> str:
        """Publish the package in ``folder`` (checked first) as the new ``main`` of ``repo``; return its revision."""
        ...

    def pull(self, repo: str, revision: str | None = None) -> Path:
        """A local folder holding ``repo`` at ``revision`` (default ``main``); treat it as read-only."""
        ...

    def list(self, modality: str | None = None) -> list[tuple[str, AdapterSummary]]:
        """``(repo, summary)`` of every adapter on the hub (of ``modality`` only, when given), at ``main``."""
        ...

    def info(self, repo: str, revision: str | None = None) -> RepoInfo:
        """Details of ``repo`` at ``revision`` (default ``main``)."""
        ...
