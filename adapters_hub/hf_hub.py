"""The Hugging Face Hub through huggingface_hub: ``create_repo`` + one ``create_commit`` to publish (to a branch,
or as a pull request), ``snapshot_download`` with a pinned revision to pull (into the HF cache), the model listing
by tag to list. When the Hub cannot be reached, ``pull`` falls back to the cached copy with a warning.

Any server that speaks the Hub's HTTP API works (a mirror, a self-hosted hub); such servers often implement
only part of it (no model listing, commit history in another shape). Every failure, whether an HTTP error,
no answer at all, or an answer that is not the API, is turned into a :class:`~adapters_hub.errors.HubError`
subclass that says which of those happened and what to do, so a caller never sees huggingface_hub's or its
HTTP library's own exceptions.

**Across huggingface_hub versions.** Each major version of huggingface_hub brought another HTTP library
(0.x requests, 1.x httpx, 2.x httpx2). This module imports none of them: it catches huggingface_hub's public
errors (``huggingface_hub.utils``, where every version since 0.20 exports them) and recognises "no answer at
all" by the transport error bases of whichever library is loaded (:func:`_transport_errors`). The APIs it
calls exist from huggingface_hub 0.20 on (see docs/hubs.md for the floor).

**Failing fast.** huggingface_hub's own pagination retries a connection error five times with backoff (about
25 s against a host that refuses connections). Listings and commit histories are therefore read here one
request per page (:meth:`HFHub._pages`), and every metadata request carries a timeout, so an unreachable hub
is reported at once, with what to do (check the network or ``--hub``, or ``HF_HUB_OFFLINE=1`` to work from the
cache).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import (
    EntryNotFoundError, FileMetadataError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
    RepositoryNotFoundError, RevisionNotFoundError, build_hf_headers, get_session, hf_raise_for_status,
)

from .atomic import write_text_atomic
from .card import ADAPTER_TAG, CardTarget
from .checks import check_member_name, check_package, read_package_config
from .errors import (
    AdapterPackageError, AdapterPackageWarning, HubError, HubFeatureUnsupportedError, HubOfflineWarning,
    HubServerError, HubUnreachableError, PackageFileMissingError, PackageTooLargeError, RepoNotFoundError,
)
from .hub import DEFAULT_COMMIT_MESSAGE, AdapterSummary, Published, RepoInfo, copy_package_files, retarget_package_card
from .layout import CONFIG_NAME, DEFAULT_LIMITS, PackageLimits
from .refs import validate_repo_id, validate_revision

__all__ = ["HFHub"]

DEFAULT_REVISION = "main"  # what huggingface_hub's snapshot_download uses when no revision is given

# The "no answer at all" error bases of the HTTP library each huggingface_hub generation uses: requests (0.x;
# ConnectTimeout, ProxyError and SSLError derive from these two), httpx (1.x) and httpx2 (2.x; ConnectError,
# TimeoutException, NetworkError, ProxyError, ProtocolError derive from TransportError). Looked up by name in the
# libraries already loaded (:func:`_transport_errors`), never imported.
_TRANSPORT_BASES = (("requests", ("ConnectionError", "Timeout")), ("httpx", ("TransportError",)),
                    ("httpx2", ("TransportError",)))
# An answer that is not the Hub API: the client fails to parse it (an empty or HTML body where JSON belongs,
# JSON with other field names; JSONDecodeError is a ValueError), or a file answer lacks the headers the client
# needs (FileMetadataError: no X-Repo-Commit / ETag).
_MALFORMED_ANSWERS = (KeyError, TypeError, ValueError, AttributeError, IndexError, FileMetadataError)
# Statuses that mean "no such endpoint here" when asked for an optional feature (listing, commit history).
_NO_ENDPOINT = (404, 405, 501)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean the hub gave no answer at all: offline mode (OfflineModeIsEnabled is a
    ConnectionError), the built-in connection and timeout errors, and the transport error bases of every HTTP
    library of :data:`_TRANSPORT_BASES` that is loaded. Evaluated when an exception is being matched, so the
    library huggingface_hub imported (lazily, in some versions) is known by then."""
    found: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module_name, class_names in _TRANSPORT_BASES:
        module = sys.modules.get(module_name)
        for name in class_names:
            cls = getattr(module, name, None) if module is not None else None
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(cls)
    return tuple(found)


def _client_errors() -> tuple[type[BaseException], ...]:
    """Everything a call into huggingface_hub may raise that is translated into a HubError (our own errors are
    re-raised first): its HTTP errors, missing entries, no answer, an answer that is not the API, local I/O."""
    return (HfHubHTTPError, EntryNotFoundError, *_transport_errors(), *_MALFORMED_ANSWERS, OSError)


def _remote_entry_missing(error: BaseException) -> bool:
    """The hub answered that a file is not there (RemoteEntryNotFoundError from 1.0 on, EntryNotFoundError
    before), as opposed to LocalEntryNotFoundError: not in the cache, the hub unreachable."""
    return isinstance(error, EntryNotFoundError) and not isinstance(error, LocalEntryNotFoundError)


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

    kind: Literal["offline", "unreachable", "server", "denied", "http", "malformed", "local"]
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
    if any(isinstance(e, OfflineModeIsEnabled) for e in _chain(error)):
        return _Failure("offline", None, detail)
    transport = _transport_errors()
    if any(isinstance(e, transport) for e in _chain(error)):
        return _Failure("unreachable", None, detail)
    if any(isinstance(e, _MALFORMED_ANSWERS) for e in _chain(error)):
        return _Failure("malformed", None, detail)
    return _Failure("local", None, detail)  # e.g. the cache folder cannot be written


# Failure kind -> (error type, what to do): the second half of every hub error message. "unreachable" gets
# _CACHED_USE added when reading (HF_HUB_OFFLINE=1 makes pulls use the Hugging Face cache).
_ADVICE: dict[str, tuple[type[HubError], str]] = {
    "offline": (HubUnreachableError, "unset HF_HUB_OFFLINE to reach the hub, or use a folder hub (--hub "
                                     "/path/to/hub or file:///...)"),
    "unreachable": (HubUnreachableError, "check the address ($HF_ENDPOINT or --hub) and the network, or use a "
                                         "folder hub (--hub /path/to/hub or file:///...)"),
    "server": (HubServerError, "the server is failing, not the request; retry later, or tell the hub's "
                               "administrator"),
    "denied": (HubError, "log in with a token that has access (huggingface-cli login, or HF_TOKEN)"),
    "http": (HubError, "check the repo id and revision, then retry"),
    "malformed": (HubError, "the server does not speak the Hugging Face Hub API as anymal expects; check that "
                            "$HF_ENDPOINT / --hub points at a Hub or a mirror of it"),
    "local": (HubError, "check that the Hugging Face cache folder is writable and has room, then retry"),
}
_CACHED_USE = "; to work from what is already in the Hugging Face cache, set HF_HUB_OFFLINE=1"


def _not_an_adapter(repo: str, revision: str) -> PackageFileMissingError:
    return PackageFileMissingError(f"{repo}@{revision[:12]} has no {CONFIG_NAME}: it is not an anymal adapter package "
                                   f"(or was published without its config); publish one with `anymal hub push`")


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _listed_model(item: Any) -> tuple[str, str | None]:
    """``(repo id, head commit)`` of one entry of the model listing (the commit may be missing)."""
    if not isinstance(item, dict) or not isinstance(item.get("id") or item.get("modelId"), str):
        raise _MalformedAnswer(f"a model entry without an 'id': {_one_line(repr(item), 80)}")
    sha = item.get("sha")
    return str(item.get("id") or item.get("modelId")), sha if isinstance(sha, str) and sha else None


class HFHub:
    """A :class:`~adapters_hub.hub.Hub` on the Hugging Face Hub (or any server speaking its API)."""

    def __init__(self, endpoint: str | None = None, token: str | bool | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, *, limits: PackageLimits = DEFAULT_LIMITS,
                 timeout: float | None = None) -> None:
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
        # Seconds each metadata request (repo info, a listing page, the history) may take to connect and answer.
        # Default: $HF_HUB_ETAG_TIMEOUT (10 s), what huggingface_hub gives its own metadata requests; without a
        # timeout a hub that drops packets would hang a command for minutes.
        self.timeout: float = float(timeout if timeout is not None else constants.HF_HUB_ETAG_TIMEOUT)

    def __repr__(self) -> str:
        return f"HFHub({self.endpoint!r})"

    def _dl_kwargs(self) -> dict:
        return {"cache_dir": self.cache_dir, "endpoint": self.endpoint, "token": self.token}

    # -- errors -------------------------------------------------------------------------------------------

    def _problem(self, failure: _Failure) -> str:
        """What went wrong, without the advice: shared by errors and the offline warning."""
        if failure.kind == "offline":
            return f"HF_HUB_OFFLINE is set, so the hub at {self.endpoint} is not contacted"
        if failure.kind == "unreachable":
            return f"cannot reach the hub at {self.endpoint} ({failure.detail})"
        if failure.status is not None:
            return f"the hub at {self.endpoint} answered {_status_text(failure.status)} ({failure.detail})"
        if failure.kind == "malformed":
            return f"the hub at {self.endpoint} gave an answer anymal cannot read ({failure.detail})"
        return f"a local error happened talking to the hub at {self.endpoint} ({failure.detail})"

    def _hub_error(self, error: BaseException, doing: str, *, feature: str | None = None,
                   instead: str = "", reading: bool = True) -> HubError:
        """The HubError for ``error``, raised by the client while ``doing`` (e.g. "reading lab/imu@main").

        ``feature`` names an optional part of the API (model listing, commit history): a missing endpoint or an
        answer in another shape then means "this server does not offer it", reported as
        HubFeatureUnsupportedError with ``instead`` (what to do instead). ``reading``: whether the Hugging Face
        cache could stand in (it can for reads, never for publishing)."""
        failure = _classify(error)
        problem = self._problem(failure)
        if feature is not None and (failure.status in _NO_ENDPOINT or failure.kind == "malformed"):
            return HubFeatureUnsupportedError(f"this hub server ({self.endpoint}) does not support {feature}: "
                                              f"{problem}. {instead}".rstrip())
        error_type, advice = _ADVICE[failure.kind]
        if failure.kind == "unreachable" and reading:
            advice += _CACHED_USE
        return error_type(f"{problem} while {doing}: {advice}")

    # -- publishing ---------------------------------------------------------------------------------------

    def check_publish_options(self, repo: str, *, private: bool | None = None, revision: str | None = None,
                              create_pr: bool = False) -> None:
        """Every option is supported, except a pull request into another branch than main: the Hub opens pull
        requests against main only."""
        validate_repo_id(repo)
        if revision is not None:
            validate_revision(revision)
        if create_pr and revision not in (None, DEFAULT_REVISION):
            raise HubFeatureUnsupportedError(
                f"the Hugging Face Hub opens pull requests against main only, not {revision!r}: leave out --revision "
                f"to propose the package for main, or publish to the branch {revision!r} without --create-pr")

    def push(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE,
             *, private: bool | None = None, revision: str | None = None, create_pr: bool = False) -> str:
        """:meth:`publish`, returning only the commit."""
        return self.publish(folder, repo, commit_message, private=private, revision=revision,
                            create_pr=create_pr).revision

    def publish(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE, *,
                private: bool | None = None, revision: str | None = None, create_pr: bool = False) -> Published:
        """Check the package, create the repo if needed (private when ``private``), and commit it as the new head
        of the branch ``revision`` (default ``main``; created from main when missing), or open a pull request
        into main (``create_pr``; its address is ``Published.pr_url``, None when main already holds exactly this
        package). Files of the previous revision that the package no longer has are deleted in the same commit.

        Only the checked files are uploaded, from a private copy made without following links (so a link inside
        ``.git/`` or one swapped in after the check never puts another file's contents on the Hub); the copy's
        model card is pointed at ``repo`` and the copy is checked again before anything is sent."""
        self.check_publish_options(repo, private=private, revision=revision, create_pr=create_pr)
        branch = revision or DEFAULT_REVISION
        checked = check_package(folder, limits=self.limits)
        with tempfile.TemporaryDirectory(prefix="anymal-push-") as tmp:
            staged = Path(tmp) / "package"
            staged.mkdir()
            copy_package_files(folder, list(checked.files), staged)
            retarget_package_card(staged, CardTarget.hugging_face(repo, None if create_pr else branch), self.limits)
            check_package(staged, limits=self.limits)
            try:
                self.api.create_repo(repo, exist_ok=True, private=private, repo_type="model")
                if private:
                    self._refuse_public(repo)
                if branch != DEFAULT_REVISION:
                    self.api.create_branch(repo, branch=branch, exist_ok=True, repo_type="model")
                commit = self.api.create_commit(repo, self._operations(repo, branch, staged), repo_type="model",
                                                commit_message=commit_message, revision=branch, create_pr=create_pr)
            except AdapterPackageError:
                raise
            except _client_errors() as e:
                raise self._hub_error(e, f"publishing {folder} to {repo}", reading=False,
                                      feature=f"publishing (POST /api/repos/create, /api/models/{repo}/commit)",
                                      instead="Publish to a folder hub (--hub /path/to/hub), or to a hub that "
                                              "accepts uploads.") from e
        pr_url = getattr(commit, "pr_url", None) if create_pr else None
        return Published(repo, str(commit.oid), branch, str(pr_url) if pr_url else None)

    def _operations(self, repo: str, branch: str, staged: Path) -> list:
        """One commit's operations: add every file of ``staged``, delete every file ``branch`` holds that the
        package does not (``.gitattributes`` stays: the Hub's LFS rules). One ``create_commit``, so the package
        changes in one step in every huggingface_hub version (``upload_folder`` of 2.x may split a folder into
        several commits), and ``create_pr`` opens the pull request the same way in all of them."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
        existing = self.api.list_repo_files(repo, revision=branch, repo_type="model")
        stale = sorted(set(existing) - set(files) - {".gitattributes"})
        return ([CommitOperationDelete(path_in_repo=name) for name in stale]
                + [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(staged / name)) for name in files])

    def _refuse_public(self, repo: str) -> None:
        """``private`` sets the visibility of a repo being created; an existing repo keeps its own. Publishing
        into a public repo what was asked to be private is refused before anything is uploaded."""
        info = self.api.model_info(repo, timeout=self.timeout)
        if getattr(info, "private", None) is False:
            raise HubError(f"{repo} already exists on {self.endpoint} and is public, and --private only sets the "
                           f"visibility of a new repo: make it private in its settings on the hub (or with "
                           f"HfApi.update_repo_settings), or publish without --private")

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
        except _client_errors():
            return files
        return {name: size if size is not None else tree.get(name) for name, size in files.items()}

    def _model_info(self, repo: str, revision: str) -> ModelInfo:
        """The repo info at ``revision`` (a branch, tag or commit), errors translated."""
        validate_repo_id(repo)
        validate_revision(revision)
        try:
            info = self.api.model_info(repo, revision=revision, files_metadata=True, timeout=self.timeout)
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
        except _client_errors() as e:
            raise self._hub_error(e, f"reading {repo}@{revision}") from e

    def _revision_missing(self, repo: str, revision: str) -> RepoNotFoundError:
        return RepoNotFoundError(f"{repo} has no revision {revision!r} on {self.endpoint}: check the revision (a "
                                 f"branch, tag or commit hash); `anymal hub info {repo}` shows the revisions")

    def _exists(self, repo: str) -> bool:
        try:
            self.api.model_info(repo, revision=DEFAULT_REVISION, timeout=self.timeout)
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
        except _client_errors() as e:
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
        """The cached snapshot of ``repo@revision`` when the hub cannot serve it. Said with a warning (the copy
        may be outdated), except when HF_HUB_OFFLINE asked for exactly this."""
        failure = _classify(error.__cause__ or error)
        problem = self._problem(failure)
        try:
            path = snapshot_download(repo, revision=revision, repo_type="model", local_files_only=True,
                                     **self._dl_kwargs())
        except (EntryNotFoundError, OSError) as e:
            raise type(error)(f"{problem}, and {repo}@{revision} is not in the cache "
                              f"{self.cache_dir or '(HF_HUB_CACHE)'}: retry later, connect to the network once to "
                              f"download it, or use a folder hub (--hub /path/to/hub or file:///...)") from e
        if failure.kind != "offline":
            warnings.warn(f"{problem}; using the cached copy of {repo}@{revision} at {path}, which may be outdated",
                          HubOfflineWarning, stacklevel=3)
        return Path(path)

    def _summary(self, repo: str, revision: str) -> AdapterSummary:
        try:
            path = hf_hub_download(repo, CONFIG_NAME, revision=revision, repo_type="model", **self._dl_kwargs())
        except AdapterPackageError:
            raise
        except _client_errors() as e:
            if _remote_entry_missing(e):  # the repo is there, the config is not (404 on the file)
                raise _not_an_adapter(repo, revision) from e
            raise self._hub_error(e, f"downloading {repo}@{revision}/{CONFIG_NAME}") from e
        # The snapshot folder holds the config (as a link into blobs/): read it with the size limit and checks.
        config = read_package_config(Path(path).parent, self.limits)
        return AdapterSummary.from_config(repo, revision, config)

    def list(self, modality: str | None = None) -> list[tuple[str, AdapterSummary]]:
        """Models tagged ``anymal-adapter`` (and ``modality``), each summarised from its config at its head; a repo
        whose config cannot be read is an unreadable row (``summary.error``), not a hole in the listing."""
        tags = [ADAPTER_TAG] + ([modality] if modality else [])
        params = [("filter", tag) for tag in tags] + [("expand", "sha"), ("expand", "tags")]
        try:
            models = [_listed_model(item) for item in self._pages("/api/models", params)]
        except AdapterPackageError:
            raise
        except (*_client_errors(), _MalformedAnswer) as e:
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

    def _pages(self, path: str, params: list[tuple[str, str]] | None = None) -> Iterator[Any]:
        """The items of a paginated Hub API list at ``path`` (under the endpoint), following its ``Link: next``
        headers. One request per page, with :attr:`timeout` and no retry: huggingface_hub's ``paginate`` retries a
        connection error five times with backoff (half a minute against a hub that is not there), and a listing
        that failed is simply run again. Through huggingface_hub's own session, so proxies, HF_HUB_OFFLINE and
        its headers apply as to every other request."""
        session = get_session()
        headers = build_hf_headers(token=self.token)
        url: str | None = f"{self.endpoint}{path}"
        query: list[tuple[str, str]] | None = params
        while url is not None:
            response = session.get(url, params=query, headers=headers, timeout=self.timeout)
            hf_raise_for_status(response)
            page = response.json()
            if not isinstance(page, list):
                raise _MalformedAnswer(f"expected a JSON list from {path}, got {type(page).__name__}")
            yield from page
            url = (response.links.get("next") or {}).get("url")
            query = None  # the next link carries the query

    def _history(self, repo: str, sha: str) -> tuple[list[str], str | None]:
        """``(commits newest first, title of sha)`` from the commit history endpoint, read leniently (only each
        commit's ``id`` and ``title``: servers differ in the rest, e.g. authors by ``name`` instead of ``user``,
        which huggingface_hub's own parser refuses with a KeyError)."""
        revisions: list[str] = []
        message = None
        for item in self._pages(f"/api/models/{repo}/commits/{quote(sha, safe='')}"):
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
        except (HfHubHTTPError, *_transport_errors(), json.JSONDecodeError, _MalformedAnswer) as e:
            reason = self._hub_error(e, f"reading the commit history of {repo}", feature="commit history",
                                     instead=f"Showing only the revision {sha[:12]}; pin it as {repo}@{sha}.")
            warnings.warn(str(reason), AdapterPackageWarning, stacklevel=2)
            revisions, message = [sha], None
        return RepoInfo(repo, sha, summary, files, message, revisions)
