"""A hub in a local or shared folder, for air-gapped teams. Layout (one repo per ``org/name``)::

    root/org/name/revisions/<hash>/   an immutable package; <hash> is the content hash of its files
    root/org/name/commits/<hash>.json commit message, time and parent of that revision
    root/org/name/refs/main           the hash ``main`` points at (a one-line text file)

Publishing copies into a hidden temporary folder in the same repo folder, fsyncs it, renames it into
``revisions/`` (atomic), then replaces ``refs/main`` (atomic). A crash at any point leaves ``main`` on the old
revision and at worst an invisible ``.*.tmp-*`` folder; nothing half-written is ever reachable.
"""

from __future__ import annotations

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
from .errors import AdapterPackageError, HubError, PackageCorruptError, PackageFileMissingError, RepoNotFoundError
from .hub import DEFAULT_COMMIT_MESSAGE, AdapterSummary, RepoInfo, copy_package_files
from .layout import DEFAULT_LIMITS, PackageLimits
from .refs import validate_repo_id, validate_revision

__all__ = ["FolderHub", "content_hash"]

_HEX = re.compile(r"^[0-9a-f]{7,64}$")
DEFAULT_BRANCH = "main"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(folder: Path, files: list[str]) -> str:
    """A 40-hex revision id from the files' paths and contents: the same package always gets the same id, so
    re-publishing it is a no-op and a revision's folder can be verified against its name."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{_file_digest(folder / rel)}\n".encode())
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

    def push(self, folder: str | os.PathLike[str], repo: str, commit_message: str = DEFAULT_COMMIT_MESSAGE) -> str:
        folder = Path(folder)
        checked = check_package(folder, limits=self.limits)  # never publish a package that would be refused
        repo_dir = self._repo_dir(repo)
        revision = content_hash(folder, list(checked.files))
        for sub in ("revisions", "commits", "refs"):
            (repo_dir / sub).mkdir(parents=True, exist_ok=True)
        target = repo_dir / "revisions" / revision
        if not target.is_dir():
            self._publish_revision(folder, list(checked.files), target)
        parent = self._read_ref(repo_dir, DEFAULT_BRANCH)
        commit = repo_dir / "commits" / f"{revision}.json"
        if not commit.exists():
            atomic.write_text_atomic(commit, json.dumps({"revision": revision, "message": commit_message,
                                                         "created_ns": time.time_ns(), "parent": parent}))
        atomic.write_text_atomic(repo_dir / "refs" / DEFAULT_BRANCH, revision + "\n")  # the publish point
        return revision

    def _publish_revision(self, folder: Path, files: list[str], target: Path) -> None:
        """Copy exactly the checked ``files`` into a hidden sibling of ``target`` (never following a link, so a
        link into ``.git/`` or one swapped in after the check cannot publish another file's contents), check the
        copy again, then rename it into place."""
        tmp = atomic.temp_sibling(target)
        try:
            tmp.mkdir()
            copy_package_files(folder, files, tmp)
            # The copy is what readers will get: it must pass the checks and hash to the revision push named
            # (a package edited while it was being published would otherwise land under the wrong name).
            check_package(tmp, limits=self.limits)
            if content_hash(tmp, files) != target.name:
                raise PackageCorruptError(f"{folder} changed while it was being published (its copy no longer "
                                          f"matches revision {target.name[:12]}): publish again once nothing is "
                                          f"writing to the package")
            atomic.fsync_tree(tmp)
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.is_dir():  # not "a concurrent push of the same content won": a real failure
                    raise
            atomic.fsync_dir(target.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

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
