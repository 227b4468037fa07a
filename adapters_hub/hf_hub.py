"""The Hugging Face Hub through huggingface_hub: ``create_repo`` + ``upload_folder`` to publish,
``snapshot_download`` with a pinned revision to pull (into the HF cache), ``list_models`` by tag to list.
When the Hub cannot be reached, ``pull`` falls back to the cached copy with a warning."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.errors import (
    EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .atomic import write_text_atomic
from .card import ADAPTER_TAG
from .checks import check_member_name, check_package
from .errors import HubError, HubOfflineWarning, PackageTooLargeError, RepoNotFoundError
from .hub import DEFAULT_COMMIT_MESSAGE, AdapterSummary, RepoInfo
from .layout import CONFIG_NAME, DEFAULT_LIMITS, PackageLimits
from .refs import validate_repo_id, validate_revision
from .schema import parse_config

__all__ = ["HFHub"]


def _unreachable(error: BaseException) -> bool:
    """True for "the Hub is not there" (network down, offline mode, Hub-side 5xx), as opposed to an answer."""
    if isinstance(error, (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError)):
        return True
    return isinstance(error, HfHubHTTPError) and error.response is not None and error.response.status_code >= 500


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

    def push(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE,
             *, private: bool | None = None) -> str:
        """Check the package, create the repo if needed, and commit the folder as the new ``main`` (files of the
        previous revision that the package no longer has are deleted in the same commit). Returns the commit."""
        check_package(folder, limits=self.limits)
        validate_repo_id(repo)
        try:
            self.api.create_repo(repo, exist_ok=True, private=private, repo_type="model")
            commit = self.api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                                            commit_message=commit_message, delete_patterns="*")
        except HfHubHTTPError as e:
            raise HubError(f"publishing {folder} to {self.endpoint}/{repo} failed: {e}. Check your token has write "
                           f"access (huggingface-cli login) and the repo id is right") from e
        except (httpx2.TransportError, OfflineModeIsEnabled) as e:
            raise HubError(f"cannot reach {self.endpoint} to publish {repo} ({e}): connect to the network, or "
                           f"publish to a folder hub (file:///...)") from e
        return str(commit.oid)

    def _check_listing(self, repo: str, files: dict[str, int | None]) -> None:
        """Refuse unsafe names and oversize files from the Hub's listing, before downloading anything."""
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

    def _model_info(self, repo: str, revision: str | None):
        validate_repo_id(repo)
        if revision is not None:
            validate_revision(revision)
        try:
            return self.api.model_info(repo, revision=revision, files_metadata=True)
        except RevisionNotFoundError as e:
            raise RepoNotFoundError(f"{repo} has no revision {revision!r} on {self.endpoint}: check the revision "
                                    f"(a branch, tag or commit hash)") from e
        except RepositoryNotFoundError as e:
            raise RepoNotFoundError(f"no repo {repo!r} on {self.endpoint} (or it is private): check the name, or log "
                                    f"in with a token that can read it") from e

    def pull(self, repo: str, revision: str | None = None) -> Path:
        """Resolve ``revision`` to a commit, check the file listing, then ``snapshot_download`` that commit into
        the HF cache and return the snapshot folder. Offline: the cached snapshot, with a HubOfflineWarning."""
        try:
            info = self._model_info(repo, revision)
        except (HfHubHTTPError, httpx2.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError) as e:
            if not _unreachable(e):
                raise HubError(f"{self.endpoint} refused {repo}@{revision or 'main'}: {e}") from e
            return self._pull_cached(repo, revision, e)
        self._check_listing(repo, {s.rfilename: s.size for s in info.siblings or []})
        try:
            path = snapshot_download(repo, revision=info.sha, repo_type="model", **self._dl_kwargs())
        except (HfHubHTTPError, httpx2.TransportError, LocalEntryNotFoundError) as e:
            raise HubError(f"downloading {repo}@{info.sha} from {self.endpoint} failed ({e}): retry, or check the "
                           f"network") from e
        if revision != info.sha:
            self._remember_ref(repo, revision or "main", str(info.sha))
        return Path(path)

    def _remember_ref(self, repo: str, revision: str, sha: str) -> None:
        """Record ``revision -> sha`` in the HF cache (``refs/<revision>``), as snapshot_download does when given a
        branch: we download by the checked commit hash (so the files are the ones whose listing was checked),
        and the offline fallback finds ``main`` through this ref."""
        storage = Path(self.cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model")
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(ref, sha)

    def _pull_cached(self, repo: str, revision: str | None, error: BaseException) -> Path:
        try:
            path = snapshot_download(repo, revision=revision or "main", repo_type="model", local_files_only=True,
                                     **self._dl_kwargs())
        except (LocalEntryNotFoundError, EntryNotFoundError, OSError) as e:
            raise HubError(f"cannot reach {self.endpoint} ({type(error).__name__}: {error}) and {repo}@"
                           f"{revision or 'main'} is not in the cache {self.cache_dir or '(HF_HUB_CACHE)'}: connect to "
                           f"the network once to download it, or use a folder hub (file:///...)") from e
        warnings.warn(f"cannot reach {self.endpoint} ({type(error).__name__}); using the cached copy of {repo}@"
                      f"{revision or 'main'} at {path}, which may be outdated", HubOfflineWarning, stacklevel=3)
        return Path(path)

    def _summary(self, repo: str, revision: str) -> AdapterSummary:
        path = hf_hub_download(repo, CONFIG_NAME, revision=revision, repo_type="model", **self._dl_kwargs())
        size = Path(path).stat().st_size
        if size > self.limits.max_config_bytes:
            raise PackageTooLargeError(f"{repo}: {CONFIG_NAME} is {size} bytes, over the config limit")
        config = parse_config(json.loads(Path(path).read_text(encoding="utf-8")), f"{repo}/{CONFIG_NAME}")
        return AdapterSummary.from_config(repo, revision, config)

    def list(self, modality: str | None = None) -> list[tuple[str, AdapterSummary]]:
        """Models tagged ``anymal-adapter`` (and ``modality``), each summarised from its config at its head."""
        tags = [ADAPTER_TAG] + ([modality] if modality else [])
        try:
            models = list(self.api.list_models(filter=tags, expand=["sha", "tags"]))
        except (httpx2.TransportError, OfflineModeIsEnabled, HfHubHTTPError) as e:
            raise HubError(f"cannot list adapters on {self.endpoint} ({e}): connect to the network, or list a "
                           f"folder hub") from e
        out = []
        for model in models:
            try:
                out.append((model.id, self._summary(model.id, model.sha or "main")))
            except (HubError, ValueError, OSError, HfHubHTTPError) as e:  # one broken repo must not hide the rest
                warnings.warn(f"skipping {model.id} on {self.endpoint}: {e}", HubOfflineWarning, stacklevel=2)
        return sorted(out, key=lambda item: item[0])

    def info(self, repo: str, revision: str | None = None) -> RepoInfo:
        info = self._model_info(repo, revision)
        sha = str(info.sha)
        files = sorted(s.rfilename for s in info.siblings or [])
        try:
            commits = self.api.list_repo_commits(repo, revision=sha)
            revisions, message = [c.commit_id for c in commits], next(
                (c.title for c in commits if c.commit_id == sha), None)
        except HfHubHTTPError:  # commit history is a nicety; the package facts above are what matter
            revisions, message = [sha], None
        return RepoInfo(repo, sha, self._summary(repo, sha), files, message, revisions)
