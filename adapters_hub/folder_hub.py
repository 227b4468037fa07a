"""A hub in a local or shared folder, for air-gapped teams. Layout (one repo per ``org/name``)::

    root/org/name/revisions/<hash>/   an immutable package; <hash> is the content hash of its files
    root/org/name/commits/<hash>.json commit message, time and parent of that revision
    root/org/name/refs/main           the hash ``main`` points at (a one-line text file)
    root/org/name/refs/<branch>       the same for every other branch (``anymal hub push --revision BRANCH``)

Publishing copies into a hidden temporary folder in the same repo folder, fsyncs it, renames it into
``revisions/`` (atomic), then replaces ``refs/<branch>`` (atomic). A crash at any point leaves the branch on
the old revision and at worst an invisible ``.*.tmp-*`` folder; nothing half-written is ever reachable.

A folder hub has no visibility (whoever can read the folder reads every package) and no pull requests:
``publish`` refuses ``private`` and ``create_pr`` rather than ignore them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import atomic
from .checks import check_package, read_package_config, scan_package_files
from .card import CardTarget
from .files import file_sha256
from .errors import (
    AdapterPackageError, HubError, HubFeatureUnsupportedError, PackageCorruptError, PackageFileMissingError,
    RepoNotFoundError,
)
from .hub import DEFAULT_COMMIT_MESSAGE, AdapterSummary, Published, RepoInfo, copy_package_files, retarget_package_card
from .layout import DEFAULT_LIMITS, PackageLimits
from .refs import validate_repo_id, validate_revision

__all__ = ["FolderHub", "content_hash"]

_HEX = re.compile(r"^[0-9a-f]{7,64}$")
DEFAULT_BRANCH = "main"


def content_hash(folder: Path, files: list[str]) -> str:
    """A 40-hex revision id from the files' paths and contents: the same package always gets the same id, so
    re-publishing it is a no-op and a revision's folder can be verified against its name."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{file_sha256(folder / rel)}\n".encode())
    return h.hexdigest()[:40]


class FolderHub:
    """A :class:`~adapters_hub.hub.Hub` in the folder ``root`` (created on first push)."""

    def __init__(self, root: str | os.PathLike[str], *, limits: PackageLimits = DEFAULT_LIMITS,
                 verify: bool = True) -> None:
        # The hub folder; may be on a shared (network) filesystem.
        self.root = Path(root).absolute()
        # Size limits applied to packages pushed and pulled.
        self.limits = limits
        # Re-hash a revision on pull and refuse it when its content no longer matches its name.
        self.verify = verify

    def __repr__(self) -> str:
        return f"FolderHub({str(self.root)!r})"

    def _repo_dir(self, repo: str) -> Path:
        return self.root / validate_repo_id(repo)

    # -- publishing ---------------------------------------------------------------------------------------

    def check_publish_options(self, repo: str, *, private: bool | None = None, revision: str | None = None,
                              create_pr: bool = False) -> None:
        """A folder hub has branches but neither visibility nor pull requests: ``private`` and ``create_pr`` are
        refused (publishing what was asked to be private into a folder others read would be a leak)."""
        validate_repo_id(repo)
        if revision is not None:
            validate_revision(revision)
        if private:
            raise HubFeatureUnsupportedError(
                f"folder hub {self.root} has no private repos: whoever can read the folder reads every package in "
                f"it; restrict who can read it with the folder's permissions (or use a folder hub of its own), "
                f"then publish without --private")
        if create_pr:
            raise HubFeatureUnsupportedError(
                f"folder hub {self.root} has no pull requests: publish to a branch (--revision BRANCH), have it "
                f"reviewed from there (anymal hub info / pull ...@BRANCH), then publish it to main")

    def push(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE, *,
             revision: str | None = None) -> str:
        """Publish the package in ``folder`` as the new head of ``revision`` (default ``main``); its revision."""
        return self.publish(folder, repo, commit_message, revision=revision).revision

    def publish(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE, *,
                private: bool | None = None, revision: str | None = None, create_pr: bool = False) -> Published:
        """Check the package, copy it into the hub as an immutable revision, then move the branch ``revision``
        (default ``main``; created when missing) to it. The copy's model card names this repo
        (:func:`~adapters_hub.hub.retarget_package_card`)."""
        self.check_publish_options(repo, private=private, revision=revision, create_pr=create_pr)
        branch = revision or DEFAULT_BRANCH
        folder = Path(folder)
        checked = check_package(folder, limits=self.limits)  # never publish a package that would be refused
        repo_dir = self._repo_dir(repo)
        for sub in ("revisions", "commits", "refs"):
            (repo_dir / sub).mkdir(parents=True, exist_ok=True)
        ref = self._branch_ref(repo, repo_dir, branch)
        target = CardTarget.folder_hub(repo, None if branch == DEFAULT_BRANCH else branch)
        published = self._publish_revision(folder, list(checked.files), repo_dir / "revisions", target)
        # A new branch starts from main, as a branch created on the Hugging Face Hub does.
        parent = self._read_ref(repo_dir, branch) or self._read_ref(repo_dir, DEFAULT_BRANCH)
        commit = repo_dir / "commits" / f"{published}.json"
        if not commit.exists():
            atomic.write_text_atomic(commit, json.dumps({"revision": published, "message": commit_message,
                                                         "created_ns": time.time_ns(), "parent": parent,
                                                         "branch": branch}))
        atomic.write_text_atomic(ref, published + "\n")  # the publish point
        return Published(repo, published, branch)

    def _branch_ref(self, repo: str, repo_dir: Path, branch: str) -> Path:
        """The ref file of ``branch`` (``refs/feature/x`` for ``feature/x``), its folder made. As in git, a
        branch cannot be named after the folder of another (``feature`` beside ``feature/x``): refused before
        anything is copied."""
        ref = repo_dir / "refs" / branch
        try:
            ref.parent.mkdir(parents=True, exist_ok=True)
            if ref.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder of other branches", str(ref))
        except OSError as e:
            raise HubError(f"{repo} in folder hub {self.root} cannot have a branch {branch!r} ({_os_reason(e)}): "
                           f"a branch cannot share its name with the folder of another (as in git); choose "
                           f"another branch name") from e
        return ref

    def _publish_revision(self, folder: Path, files: list[str], revisions: Path, target: CardTarget) -> str:
        """Copy exactly the checked ``files`` into a hidden folder in ``revisions`` (never following a link, so a
        link into ``.git/`` or one swapped in after the check cannot publish another file's contents), point its
        model card at ``target``, check the copy again, and rename it to its content hash (atomic). Returns the
        hash. The hash is taken of the copy, which is what readers get: a package edited while it is published
        cannot land under another package's name."""
        tmp = atomic.temp_sibling(revisions / "incoming")
        try:
            tmp.mkdir()
            copy_package_files(folder, files, tmp)
            retarget_package_card(tmp, target, self.limits)
            copied = check_package(tmp, limits=self.limits)
            published = content_hash(tmp, list(copied.files))
            final = revisions / published
            if not final.is_dir():
                atomic.fsync_tree(tmp)
                try:
                    os.replace(tmp, final)
                except OSError:
                    if not final.is_dir():  # not "a concurrent push of the same content won": a real failure
                        raise
                atomic.fsync_dir(revisions)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return published

    # -- reading ------------------------------------------------------------------------------------------

    @staticmethod
    def _read_ref(repo_dir: Path, name: str) -> str | None:
        try:
            return (repo_dir / "refs" / name).read_text(encoding="utf-8").strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _resolve(self, repo: str, revision: str | None) -> tuple[Path, str]:
        repo_dir = self._repo_dir(repo)
        if not (repo_dir / "refs").is_dir():
            known = ", ".join(r for r, _ in self._repos()) or "none"
            raise RepoNotFoundError(f"no repo {repo!r} in folder hub {self.root} (repos: {known}): check the name, or "
                                    f"publish it with FolderHub.push / anymal push")
        wanted = validate_revision(revision or DEFAULT_BRANCH)
        found = self._read_ref(repo_dir, wanted)
        if found is None and (repo_dir / "revisions" / wanted).is_dir():
            found = wanted
        if found is None and _HEX.match(wanted):
            matches = [p.name for p in (repo_dir / "revisions").iterdir()
                       if p.name.startswith(wanted) and atomic.TMP_MARKER not in p.name]
            if len(matches) == 1:
                found = matches[0]
        if found is not None and not (repo_dir / "revisions" / found).is_dir():
            raise PackageFileMissingError(f"{repo}: {wanted!r} points at revision {found[:12]}, which is missing from "
                                          f"revisions/ in folder hub {self.root}: the hub folder is damaged; publish "
                                          f"the adapter again")
        if found is None:
            raise RepoNotFoundError(f"{repo} has no revision {wanted!r} in folder hub {self.root} (revisions: "
                                    f"{', '.join(r[:12] for r in self.revisions(repo)) or 'none'}): pick one of them")
        return repo_dir / "revisions" / found, found

    def pull(self, repo: str, revision: str | None = None) -> Path:
        """The revision's folder inside the hub (revisions are immutable, so no copy is made)."""
        with self._reading(repo):
            path, resolved = self._resolve(repo, revision)
            if self.verify:
                files = scan_package_files(path, self.limits)
                if content_hash(path, list(files)) != resolved:
                    raise PackageCorruptError(f"{repo}@{resolved[:12]} in folder hub {self.root} no longer matches its "
                                              f"content hash: the files were modified or damaged; publish it again")
        return path

    @contextmanager
    def _reading(self, repo: str) -> Iterator[None]:
        """Turn a filesystem failure while reading ``repo`` (permissions, a file where a folder belongs, a
        shared folder gone away) into a HubError that names the repo, instead of a bare OSError."""
        try:
            yield
        except AdapterPackageError:
            raise  # already says what is wrong (PackageFileMissingError is an OSError too)
        except OSError as e:
            raise HubError(f"{repo} in folder hub {self.root} cannot be read ({_os_reason(e)}): check the folder's "
                           f"permissions (and that a shared folder is mounted), or publish the adapter again") from e

    def _repos(self, unreadable: list[tuple[str, str]] | None = None) -> list[tuple[str, Path]]:
        """``(org/name, folder)`` of every repo (a folder with ``refs/main``). An org folder that cannot be
        listed is skipped, and recorded in ``unreadable`` as ``(org/*, reason)`` when the caller asks."""
        if not self.root.is_dir():
            return []
        try:
            orgs = sorted(self.root.iterdir())
        except OSError as e:
            raise HubError(f"folder hub {self.root} cannot be listed ({_os_reason(e)}): check the folder's permissions "
                           f"(and that a shared folder is mounted)") from e
        found = []
        for org in orgs:
            if org.name.startswith(".") or not org.is_dir():
                continue
            try:
                names = sorted(org.iterdir())
            except OSError as e:
                if unreadable is not None:
                    unreadable.append((f"{org.name}/*", _os_reason(e)))
                continue
            for name in names:
                if not name.name.startswith(".") and (name / "refs" / DEFAULT_BRANCH).is_file():
                    found.append((f"{org.name}/{name.name}", name))
        return found

    def _head_summary(self, repo: str) -> AdapterSummary:
        """The summary of ``repo`` at ``main``; raises (AdapterPackageError / OSError) when it cannot be read."""
        path, revision = self._resolve(repo, None)
        return AdapterSummary.from_config(repo, revision, read_package_config(path, self.limits))

    def list(self, modality: str | None = None) -> list[tuple[str, AdapterSummary]]:
        """Every repo at ``main`` (of ``modality`` only, when given). A repo that cannot be read is listed as an
        unreadable row (``summary.error`` says why) whatever ``modality`` is, since its modality is unknown: one
        broken repo neither breaks the listing nor silently disappears from it."""
        out: list[tuple[str, AdapterSummary]] = []
        unreadable: list[tuple[str, str]] = []
        for repo, repo_dir in self._repos(unreadable):
            try:
                summary = self._head_summary(repo)
            except AdapterPackageError as e:
                out.append((repo, AdapterSummary.unreadable(repo, self._read_ref_quietly(repo_dir), str(e))))
                continue
            except OSError as e:
                out.append((repo, AdapterSummary.unreadable(repo, self._read_ref_quietly(repo_dir), _os_reason(e))))
                continue
            if modality is None or summary.modality == modality:
                out.append((repo, summary))
        out += [(repo, AdapterSummary.unreadable(repo, None, reason)) for repo, reason in unreadable]
        return sorted(out, key=lambda item: item[0])

    def _read_ref_quietly(self, repo_dir: Path) -> str | None:
        try:
            return self._read_ref(repo_dir, DEFAULT_BRANCH)
        except (OSError, ValueError):
            return None

    def revisions(self, repo: str) -> list[str]:
        """Every published revision of ``repo``, newest first (commit records that cannot be read are skipped)."""
        commits = []
        for path in (self._repo_dir(repo) / "commits").glob("*.json"):
            if atomic.TMP_MARKER in path.name:
                continue
            try:
                created = json.loads(path.read_text(encoding="utf-8"))["created_ns"]
            except (ValueError, KeyError, TypeError, OSError):
                continue
            if isinstance(created, int):  # a hand-edited record must not make the sort fail
                commits.append((created, path.stem))
        return [rev for _, rev in sorted(commits, reverse=True)]

    def info(self, repo: str, revision: str | None = None) -> RepoInfo:
        with self._reading(repo):
            path, resolved = self._resolve(repo, revision)
            config = read_package_config(path, self.limits)
            try:
                record = json.loads((path.parent.parent / "commits" / f"{resolved}.json").read_text("utf-8"))
                message = record["message"] if isinstance(record["message"], str) else None
            except (OSError, ValueError, KeyError, TypeError):
                message = None
            files = sorted(scan_package_files(path, self.limits))
            return RepoInfo(repo, resolved, AdapterSummary.from_config(repo, resolved, config), files, message,
                            self.revisions(repo))


def _os_reason(error: OSError) -> str:
    """``strerror: file`` of an OSError, one line (``str(OSError)`` repeats the errno)."""
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or type(error).__name__}{where}"
