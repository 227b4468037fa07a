"""The Hugging Face Hub through huggingface_hub: ``create_repo`` + ``upload_folder`` to publish,
``snapshot_download`` with a pinned revision to pull (into the HF cache), ``list_models`` by tag to list.
When the Hub cannot be reached, ``pull`` falls back to the cached copy with a warning.

Any server that speaks the Hub's HTTP API works (a mirror, a self-hosted hub); such servers often implement
only part of it (no model listing, commit history in another shape). Every failure, whether an HTTP error,
no answer at all, or an answer that is not the API, is turned into a :class:`~adapters_hub.errors.HubError`
subclass that says which of those happened and what to do, so a caller never sees huggingface_hub's or
httpx's own exceptions.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import httpx2  # the transport huggingface_hub itself uses (its connection errors are httpx2 errors)
from huggingface_hub import HfApi, ModelInfo, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError, FileMetadataError, HfHubHTTPError, OfflineModeIsEnabled, RemoteEntryNotFoundError,
    RepositoryNotFoundError, RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import build_hf_headers, paginate

from .atomic import write_text_atomic
from .card import ADAPTER_TAG
from .checks import check_member_name, check_package, read_package_config
from .errors import (
    AdapterPackageError, AdapterPackageWarning, HubError, HubFeatureUnsupportedError, HubOfflineWarning,
    HubServerError, HubUnreachableError, PackageFileMissingError, PackageTooLargeError, RepoNotFoundError,
)
from .hub import DEFAULT_COMMIT_MESSAGE, AdapterSummary, RepoInfo, copy_package_files
from .layout import CONFIG_NAME, DEFAULT_LIMITS, PackageLimits
from .refs import validate_repo_id, validate_revision

__all__ = ["HFHub"]

DEFAULT_REVISION = "main"  # what huggingface_hub's snapshot_download uses when no revision is given

# No answer at all. OfflineModeIsEnabled is a ConnectionError; httpx2 errors are what the client's session raises.
_TRANSPORT_ERRORS = (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError)
# An answer that is not the Hub API: the client fails to parse it (an empty or HTML body where JSON belongs,
# JSON with other field names; JSONDecodeError is a ValueError), or a file answer lacks the headers the client
# needs (FileMetadataError: no X-Repo-Commit / ETag).
_MALFORMED_ANSWERS = (KeyError, TypeError, ValueError, AttributeError, IndexError, FileMetadataError)
# Everything a call into huggingface_hub may raise that we translate (our own errors are re-raised first).
_CLIENT_ERRORS = (HfHubHTTPError, EntryNotFoundError, *_TRANSPORT_ERRORS, *_MALFORMED_ANSWERS, OSError)
# Statuses that mean "no such endpoint here" when asked for an optional feature (listing, commit history).
_NO_ENDPOINT = (404, 405, 501)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and its causes: huggingface_hub wraps the real reason (a connection error, a 5xx) in
    LocalEntryNotFoundError and friends."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class _MalformedAnswer(ValueError):
    """An answer we parse ourselves is not in the Hub API's shape."""


def _one_line(text: str, limit: int = 240) -> str:
    """Error texts of huggingface_hub span several lines; the CLI prints one."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True)
class _Failure:
    """What kind of failure an exception from the client is."""

    kind: Literal["unreachable", "server", "denied", "http", "malformed", "local"]
    # HTTP status of the answer, when there was one.
    status: int | None
    # One line: the exception type and message.
    detail: str


def _classify(error: BaseException) -> _Failure:
    detail = _one_line(f"{type(error).__name__}: {error}")
    for e in _chain(error):
        if isinstance(e, HfHubHTTPError) and e.response is not None:
            status = e.response.status_code
            kind = "server" if status >= 500 else "denied" if status in (401, 403) else "http"
            return _Failure(kind, status, detail)
    if any(isinstance(e, _TRANSPORT_ERRORS) for e in _chain(error)):
        return _Failure("unreachable", None, detail)
    if any(isinstance(e, _MALFORMED_ANSWERS) for e in _chain(error)):
        return _Failure("malformed", None, detail)
    return _Failure("local", None, detail)  # e.g. the cache folder cannot be written


# Failure kind -> (error type, what to do): the second half of every hub error message.
_ADVICE: dict[str, tuple[type[HubError], str]] = {
    "unreachable": (HubUnreachableError, "check the address ($HF_ENDPOINT or --hub) and the network, or use a "
                                         "folder hub (file:///...)"),
    "server": (HubServerError, "the server is failing, not the request; retry later, or tell the hub's "
                               "administrator"),
    "denied": (HubError, "log in with a token that has access (huggingface-cli login, or HF_TOKEN)"),
    "http": (HubError, "check the repo id and revision, then retry"),
    "malformed": (HubError, "the server does not speak the Hugging Face Hub API as anymal expects; check that "
                            "$HF_ENDPOINT / --hub points at a Hub or a mirror of it"),
    "local": (HubError, "check that the Hugging Face cache folder is writable and has room, then retry"),
}


def _not_an_adapter(repo: str, revision: str) -> PackageFileMissingError:
    return PackageFileMissingError(f"{repo}@{revision[:12]} has no {CONFIG_NAME}: it is not an anymal adapter package "
                                   f"(or was published without its config); publish one with `anymal hub push`")


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class HFHub:
    """A :class:`~adapters_hub.hub.Hub` on the Hugging Face Hub (or any server speaking its API)."""

    def __init__(self, endpoint: str | None = None, token: str | bool | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, *, limits: PackageLimits = DEFAULT_LIMITS) -> None:
        # The client; ``endpoint`` None means HF_ENDPOINT / huggingface.co as huggingface_hub decides.
        self.api = HfApi(endpoint=endpoint, token=token)
        # Base URL actually used.
        self.endpoint: str = self.api.endpoint
        # Token (None: the one huggingface_hub finds; False: anonymous).
        self.token = token
        # HF cache folder (None: huggingface_hub's default, HF_HUB_CACHE).
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        # Size limits checked on the listing before anything is downloaded.
        self.limits = limits

    def __repr__(self) -> str:
        return f"HFHub({self.endpoint!r})"

    def _dl_kwargs(self) -> dict:
        return {"cache_dir": self.cache_dir, "endpoint": self.endpoint, "token": self.token}

    # -- errors -------------------------------------------------------------------------------------------

    def _problem(self, failure: _Failure) -> str:
        """What went wrong, without the advice: shared by errors and the offline warning."""
        if failure.kind == "unreachable":
            return f"cannot reach the hub at {self.endpoint} ({failure.detail})"
        if failure.status is not None:
            return f"the hub at {self.endpoint} answered {_status_text(failure.status)} ({failure.detail})"
        if failure.kind == "malformed":
            return f"the hub at {self.endpoint} gave an answer anymal cannot read ({failure.detail})"
        return f"a local error happened talking to the hub at {self.endpoint} ({failure.detail})"

    def _hub_error(self, error: BaseException, doing: str, *, feature: str | None = None,
                   instead: str = "") -> HubError:
        """The HubError for ``error``, raised by the client while ``doing`` (e.g. "reading lab/imu@main").

        ``feature`` names an optional part of the API (model listing, commit history): a missing endpoint or an
        answer in another shape then means "this server does not offer it", reported as
        HubFeatureUnsupportedError with ``instead`` (what to do instead)."""
        failure = _classify(error)
        problem = self._problem(failure)
        if feature is not None and (failure.status in _NO_ENDPOINT or failure.kind == "malformed"):
            return HubFeatureUnsupportedError(f"this hub server ({self.endpoint}) does not support {feature}: "
                                              f"{problem}. {instead}".rstrip())
        error_type, advice = _ADVICE[failure.kind]
        return error_type(f"{problem} while {doing}: {advice}")

    # -- publishing ---------------------------------------------------------------------------------------

    def push(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE,
             *, private: bool | None = None) -> str:
        """Check the package, create the repo if needed, and commit it as the new ``main`` (files of the previous
        revision that the package no longer has are deleted in the same commit). Returns the commit.

        Only the checked files are uploaded, from a private copy made without following links (so a link inside
        ``.git/`` or one swapped in after the check never puts another file's contents on the Hub); the copy is
        checked again before anything is sent."""
        checked = check_package(folder, limits=self.limits)
        validate_repo_id(repo)
        with tempfile.TemporaryDirectory(prefix="anymal-push-") as tmp:
            staged = Path(tmp) / "package"
            staged.mkdir()
            copy_package_files(folder, list(checked.files), staged)
            check_package(staged, limits=self.limits)
            try:
                self.api.create_repo(repo, exist_ok=True, private=private, repo_type="model")
                commit = self.api.upload_folder(folder_path=str(staged), repo_id=repo, repo_type="model",
                                                commit_message=commit_message, delete_patterns="*")
            except AdapterPackageError:
                raise
            except _CLIENT_ERRORS as e:
                raise self._hub_error(e, f"publishing {folder} to {repo}", feature="publishing (POST /api/repos/create, "
                                      f"/api/models/{repo}/commit)", instead="Publish to a folder hub "
                                      "(file:///root/org/name), or to a hub that accepts uploads.") from e
        return str(commit.oid)

    # -- reading ------------------------------------------------------------------------------------------

    def _check_listing(self, repo: str, revision: str, files: dict[str, int | None]) -> None:
        """Refuse a repo without a config, unsafe names and oversize files from the Hub's listing, before
        downloading anything."""
        if CONFIG_NAME not in files:
            raise _not_an_adapter(repo, revision)
        total = 0
        for name, size in files.items():
            check_member_name(name)
            if size is not None:
                if size > self.limits.max_file_bytes:
                    raise PackageTooLargeError(f"{repo}: {name} is {size} bytes, over the {self.limits.max_file_bytes}-"
                                               f"byte limit: raise PackageLimits.max_file_bytes if it is genuine")
                total += size
        if total > self.limits.max_total_bytes or len(files) > self.limits.max_files:
            raise PackageTooLargeError(f"{repo} holds {len(files)} files, {total} bytes: over the package limits "
                                       f"({self.limits.max_files} files, {self.limits.max_total_bytes} bytes)")

    def _listing(self, repo: str, info: ModelInfo) -> dict[str, int | None]:
        """File -> size at ``info.sha``. Servers that leave sizes out of the repo info (mirrors often do) are
        asked for the file tree, so the size limits still apply before the download; when that fails too the
        sizes stay unknown and the checks after the download (check_package) are what bound them."""
        files = {s.rfilename: s.size for s in info.siblings or []}
        if all(size is not None for size in files.values()):
            return files
        try:
            tree = {f.path: f.size for f in self.api.list_repo_tree(repo, revision=info.sha, recursive=True)
                    if hasattr(f, "size")}  # RepoFolder entries have no size
        except AdapterPackageError:
            raise
        except _CLIENT_ERRORS:
            return files
        return {name: size if size is not None else tree.get(name) for name, size in files.items()}

    def _model_info(self, repo: str, revision: str) -> ModelInfo:
        """The repo info at ``revision`` (a branch, tag or commit), errors translated."""
        validate_repo_id(repo)
        validate_revision(revision)
        try:
            info = self.api.model_info(repo, revision=revision, files_metadata=True)
            if not isinstance(info.sha, str) or not info.sha:
                raise KeyError("sha")  # no commit to pin the download to: not an answer we can use
            return info
        except RevisionNotFoundError as e:
            raise self._revision_missing(repo, revision) from e
        except RepositoryNotFoundError as e:
            # Some servers answer "repo not found" for an unknown revision of a repo that exists: look at main.
            if revision != DEFAULT_REVISION and self._exists(repo):
                raise self._revision_missing(repo, revision) from e
            raise RepoNotFoundError(f"no repo {repo!r} on {self.endpoint} (or it is private): check the name, or log "
                                    f"in with a token that can read it") from e
        except AdapterPackageError:
            raise
        except _CLIENT_ERRORS as e:
            raise self._hub_error(e, f"reading {repo}@{revision}") from e

    def _revision_missing(self, repo: str, revision: str) -> RepoNotFoundError:
        return RepoNotFoundError(f"{repo} has no revision {revision!r} on {self.endpoint}: check the revision (a "
                                 f"branch, tag or commit hash); `anymal hub info {repo}` shows the revisions")

    def _exists(self, repo: str) -> bool:
        try:
            self.api.model_info(repo, revision=DEFAULT_REVISION)
        except Exception:  # any failure: we only learn that it is not known to exist
            return False
        return True

    def pull(self, repo: str, revision: str | None = None) -> Path:
        """Resolve ``revision`` (default ``main``) to a commit, check the file listing, then ``snapshot_download``
        that commit into the HF cache and return the snapshot folder. When the hub does not answer or answers
        with a server error: the cached snapshot, with a HubOfflineWarning."""
        revision = revision or DEFAULT_REVISION
        try:
            info = self._model_info(repo, revision)
        except (HubUnreachableError, HubServerError) as e:
            return self._pull_cached(repo, revision, e)
        self._check_listing(repo, str(info.sha), self._listing(repo, info))
        try:
            path = snapshot_download(repo, revision=info.sha, repo_type="model", **self._dl_kwargs())
        except AdapterPackageError:
            raise
        except _CLIENT_ERRORS as e:
            raise self._hub_error(e, f"downloading {repo}@{info.sha}") from e
        if revision != info.sha:
            self._remember_ref(repo, revision, str(info.sha))
        return Path(path)

    def _remember_ref(self, repo: str, revision: str, sha: str) -> None:
        """Record ``revision -> sha`` in the HF cache (``refs/<revision>``), as snapshot_download does when given a
        branch: we download by the checked commit hash (so the files are the ones whose listing was checked),
        and the offline fallback finds ``main`` through this ref."""
        storage = Path(self.cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model")
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(ref, sha)

    def _pull_cached(self, repo: str, revision: str, error: HubError) -> Path:
        problem = self._problem(_classify(error.__cause__ or error))
        try:
            path = snapshot_download(repo, revision=revision, repo_type="model", local_files_only=True,
                                     **self._dl_kwargs())
        except (EntryNotFoundError, OSError) as e:
            raise type(error)(f"{problem}, and {repo}@{revision} is not in the cache "
                              f"{self.cache_dir or '(HF_HUB_CACHE)'}: retry later, connect to the network once to "
                              f"download it, or use a folder hub (file:///...)") from e
        warnings.warn(f"{problem}; using the cached copy of {repo}@{revision} at {path}, which may be outdated",
                      HubOfflineWarning, stacklevel=3)
        return Path(path)

    def _summary(self, repo: str, revision: str) -> AdapterSummary:
        try:
            path = hf_hub_download(repo, CONFIG_NAME, revision=revision, repo_type="model", **self._dl_kwargs())
        except AdapterPackageError:
            raise
        except RemoteEntryNotFoundError as e:  # the repo is there, the config is not (404 on the file)
            raise _not_an_adapter(repo, revision) from e
        except _CLIENT_ERRORS as e:
            raise self._hub_error(e, f"downloading {repo}@{revision}/{CONFIG_NAME}") from e
        # The snapshot folder holds the config (as a link into blobs/): read it with the size limit and checks.
        config = read_package_config(Path(path).parent, self.limits)
        return AdapterSummary.from_config(repo, revision, config)

    def list(self, modality: str | None = None) -> list[tuple[str, AdapterSummary]]:
        """Models tagged ``anymal-adapter`` (and ``modality``), each summarised from its config at its head; a repo
        whose config cannot be read is an unreadable row (``summary.error``), not a hole in the listing."""
        tags = [ADAPTER_TAG] + ([modality] if modality else [])
        try:
            models = [(str(m.id), m.sha) for m in self.api.list_models(filter=tags, expand=["sha", "tags"])]
        except AdapterPackageError:
            raise
        except _CLIENT_ERRORS as e:
            raise self._hub_error(e, "listing adapters", feature="listing models (GET /api/models)",
                                  instead="Use `anymal hub info ORG/NAME` for a repo you know, and pull it by "
                                          "ref (ORG/NAME[@REVISION]).") from e
        out = []
        for repo, sha in models:
            try:
                out.append((repo, self._summary(repo, sha or DEFAULT_REVISION)))
            except AdapterPackageError as e:  # one broken repo must not hide the rest
                out.append((repo, AdapterSummary.unreadable(repo, sha, str(e))))
        return sorted(out, key=lambda item: item[0])

    def _history(self, repo: str, sha: str) -> tuple[list[str], str | None]:
        """``(commits newest first, title of sha)`` from the commit history endpoint, read leniently (only each
        commit's ``id`` and ``title``: servers differ in the rest, e.g. authors by ``name`` instead of ``user``,
        which huggingface_hub's own parser refuses with a KeyError)."""
        url = f"{self.endpoint}/api/models/{repo}/commits/{quote(sha, safe='')}"
        revisions: list[str] = []
        message = None
        for item in paginate(url, params={}, headers=build_hf_headers(token=self.token)):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise _MalformedAnswer(f"a commit entry without an 'id': {_one_line(repr(item), 80)}")
            revisions.append(item["id"])
            if item["id"] == sha and isinstance(item.get("title"), str):
                message = item["title"].strip() or None
        if sha not in revisions:
            raise _MalformedAnswer(f"the history of {sha[:12]} does not contain {sha[:12]}")
        return revisions, message

    def info(self, repo: str, revision: str | None = None) -> RepoInfo:
        """Details of ``repo`` at ``revision`` (default ``main``). The commit history is a nicety: a server
        without it (or failing on it) gives ``revisions=[sha]`` and no message, with a warning saying why."""
        info = self._model_info(repo, revision or DEFAULT_REVISION)
        sha = str(info.sha)
        files = sorted(s.rfilename for s in info.siblings or [])
        summary = self._summary(repo, sha)
        try:
            revisions, message = self._history(repo, sha)
        except (HfHubHTTPError, *_TRANSPORT_ERRORS, json.JSONDecodeError, _MalformedAnswer) as e:
            reason = self._hub_error(e, f"reading the commit history of {repo}", feature="commit history",
                                     instead=f"Showing only the revision {sha[:12]}; pin it as {repo}@{sha}.")
            warnings.warn(str(reason), AdapterPackageWarning, stacklevel=2)
            revisions, message = [sha], None
        return RepoInfo(repo, sha, summary, files, message, revisions)
