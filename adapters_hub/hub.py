"""The interface every hub implements, the summaries its listings return, and the copy every hub publishes
with (exactly the checked files, never through a link)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from .card import CardTarget, render_model_card, retarget_card
from .checks import check_member_name, read_package_config
from .config import AdapterConfig, tokens_text
from .errors import PackageCorruptError, UnsafePackageError
from .files import hf_snapshot_blobs
from .layout import DEFAULT_LIMITS, README_NAME, PackageLimits

__all__ = ["Hub", "AdapterSummary", "RepoInfo", "Published", "DEFAULT_COMMIT_MESSAGE", "copy_package_file",
           "copy_package_files", "retarget_package_card"]

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
    # Why the repo could not be summarised (a listing row for a broken repo), None for a readable one. Such a
    # row keeps ``repo`` and ``revision`` (when known) and leaves the config facts empty.
    error: str | None = None
    # ``fixed`` (exactly ``num_tokens`` per attachment) or ``per_step`` (one per encoder step; ``num_tokens`` is
    # the count for the modality's example input).
    token_mode: str | None = None
    # Projector type's per-step default applies when ``token_mode`` is None (see ``tokens_text``).

    @property
    def tokens_text(self) -> str:
        """The token count as a person should read it (see ``AdapterConfig.tokens_text``)."""
        return tokens_text(self.token_mode, self.num_tokens, self.projector)

    @classmethod
    def unreadable(cls, repo: str, revision: str | None, error: str) -> "AdapterSummary":
        """A listing row for a repo whose config cannot be read: one broken repo is shown with its reason
        instead of breaking (or silently shortening) the listing of the others."""
        return cls(repo, revision, "", "", "", 0, "", 0, "", False, error=error)

    @classmethod
    def from_config(cls, repo: str, revision: str | None, config: AdapterConfig) -> "AdapterSummary":
        return cls(repo, revision, config.name, config.modality, config.llm.name, config.llm.hidden_size,
                   config.llm.fingerprint, config.num_tokens, config.projector.type, config.lora is not None,
                   dict(config.metrics), config.anymal_version, config.schema_version,
                   token_mode=config.token_mode)

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON (``anymal hub ls --json``): every field under its own name, plus ``tokens``, the
        token count in words. The keys are stable; new ones may be added."""
        return {**asdict(self), "tokens": self.tokens_text if self.error is None else None}


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

    def to_json(self) -> dict[str, Any]:
        """The details as JSON (``anymal hub info --json``): ``repo``, ``revision``, ``adapter`` (the summary's
        :meth:`AdapterSummary.to_json`), ``files``, ``commit_message`` and ``revisions``. The keys are stable;
        new ones may be added."""
        return {"repo": self.repo, "revision": self.revision, "adapter": self.summary.to_json(),
                "files": list(self.files), "commit_message": self.commit_message, "revisions": list(self.revisions)}


@dataclass(frozen=True)
class Published:
    """What one publish did (``Hub.publish``)."""

    # ``org/name`` on the hub.
    repo: str
    # The revision the package now is (a commit on the Hugging Face Hub, a content hash in a folder hub).
    revision: str
    # The branch the package went to (``main`` unless another was asked for); for a pull request, the branch
    # the pull request asks to merge into.
    branch: str
    # Address of the pull request opened for it (``create_pr``), None when it was committed to ``branch``.
    pr_url: str | None = None


@runtime_checkable
class Hub(Protocol):
    """Where adapter packages are published and pulled from. Implemented by ``HFHub`` (Hugging Face Hub) and
    ``FolderHub`` (a local or shared folder); the host and the CLI only use this interface."""

    def push(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE) -> str:
        """Publish the package in ``folder`` (checked first) as the new ``main`` of ``repo``; return its revision."""
        ...

    def publish(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE, *,
                private: bool | None = None, revision: str | None = None, create_pr: bool = False) -> Published:
        """``push`` with its options: ``private`` (a new repo's visibility), ``revision`` (the branch to publish
        to, created when missing; default ``main``) and ``create_pr`` (open a pull request instead of
        committing). A hub refuses an option it cannot honour (``check_publish_options``)."""
        ...

    def check_publish_options(self, repo: str, *, private: bool | None = None, revision: str | None = None,
                              create_pr: bool = False) -> None:
        """Refuse, before anything is checked or sent, a ``publish`` this hub cannot do as asked."""
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


# -- publishing: copy the checked files, never a link -------------------------------------------------------

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# Opening a FIFO for reading blocks until a writer appears: non-blocking open, then the regular-file check refuses it.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _refuse_link(rel: str, folder: Path) -> UnsafePackageError:
    return UnsafePackageError(f"package entry {rel!r} in {folder} is (or lies under) a link, or changed into one "
                              f"after the package was checked: links are never published, so a package cannot carry "
                              f"other files' contents; replace it with the real file and publish again")


def _open_no_follow(root: Path, rel: str) -> BinaryIO:
    """Open ``root/rel`` for reading without following a link at any level below ``root``: each folder is
    opened relative to the previous one with O_NOFOLLOW, so a link swapped in after the check is refused rather
    than read. Only regular files are opened (a FIFO or device is refused)."""
    parts = rel.split("/")
    if _NOFOLLOW and _DIRECTORY and os.open in os.supports_dir_fd:
        fd = os.open(root, os.O_RDONLY | _DIRECTORY)
        try:
            for part in parts[:-1]:
                next_fd = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            file_fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=fd)
        except OSError as e:
            # ELOOP: the last part is a link; ENOTDIR: a folder on the way is a link (O_DIRECTORY|O_NOFOLLOW).
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refuse_link(rel, root) from None
            raise
        finally:
            os.close(fd)
    else:  # no O_NOFOLLOW (Windows): look at every part just before opening
        path = root
        for part in parts:
            path = path / part
            if path.is_symlink():
                raise _refuse_link(rel, root)
        file_fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise UnsafePackageError(f"package entry {rel!r} in {root} is not a regular file (a FIFO, device or "
                                 f"folder): a package holds only regular files; remove it and publish again")
    return os.fdopen(file_fd, "rb")


def copy_package_file(folder: Path, rel: str, dst: Path) -> None:
    """Copy the package file ``rel`` (a checked relative POSIX path) of ``folder`` to the new file ``dst``,
    without following links; in a Hugging Face cache snapshot, a file that is a link to its own blob is read
    from ``blobs/`` (again without following links)."""
    check_member_name(rel)
    root, name = folder, rel
    blobs = hf_snapshot_blobs(folder)
    if blobs is not None and (folder / rel).is_symlink():
        target = (folder / rel).resolve()
        if target.parent != blobs:
            raise _refuse_link(rel, folder)
        root, name = blobs, target.name
    with _open_no_follow(root, name) as src, open(dst, "xb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def copy_package_files(folder: str | os.PathLike[str], files: Iterable[str], target: Path) -> None:
    """Copy exactly ``files`` (the list ``check_package`` returned, never a fresh walk of ``folder``) into
    ``target``: what is published is what was checked, and a link anywhere is refused, not followed."""
    folder = Path(folder)
    for rel in files:
        dst = target.joinpath(*rel.split("/"))
        dst.parent.mkdir(parents=True, exist_ok=True)
        copy_package_file(folder, rel, dst)  # looked up at call time, so tests can simulate a crash mid-copy


def retarget_package_card(staged: Path, target: CardTarget, limits: PackageLimits = DEFAULT_LIMITS) -> None:
    """Rewrite the model card of ``staged`` (the private copy a hub is about to publish, never the author's
    folder) for ``target``: its usage snippet names the repo it is published to, and its front matter is
    brought up to date from the config (:func:`~adapters_hub.card.retarget_card`). A package without a card
    gets a full one."""
    config = read_package_config(staged, limits)
    readme = staged / README_NAME
    try:
        text = readme.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except UnicodeDecodeError:
        raise PackageCorruptError(f"{README_NAME} of adapter {config.name!r} is not UTF-8 text: a model card is "
                                  f"Markdown; save it as UTF-8 and publish again") from None
    card = render_model_card(config, target=target) if text is None else retarget_card(text, config, target)
    readme.write_text(card, encoding="utf-8")
