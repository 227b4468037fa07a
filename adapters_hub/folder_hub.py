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
import warnings
from pathlib import Path

from . import atomic
from .checks import check_package, read_package_config, scan_package_files
from .errors import AdapterPackageError, AdapterPackageWarning, PackageCorruptError, RepoNotFoundError
from .hub import DEFAULT_COMMIT_MESSAGE, AdapterSummary, RepoInfo
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
        tmp = atomic.temp_sibling(target)
        try:
            for rel in files:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                atomic.copy_file(folder / rel, tmp / rel)
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
        if found is None or not (repo_dir / "revisions" / found).is_dir():
            raise RepoNotFoundError(f"{repo} has no revision {wanted!r} in folder hub {self.root} (revisions: "
                                    f"{', '.join(r[:12] for r in self.revisions(repo)) or 'none'}): pick one of them")
        return repo_dir / "revisions" / found, found

    def pull(self, repo: str, revision: str | None = None) -> Path:
        """The revision's folder inside the hub (revisions are immutable, so no copy is made)."""
        path, resolved = self._resolve(repo, revision)
        if self.verify:
            files = scan_package_files(path, self.limits)
            if content_hash(path, list(files)) != resolved:
                raise PackageCorruptError(f"{repo}@{resolved[:12]} in folder hub {self.root} no longer matches its "
                                          f"content hash: the files were modified or damaged; publish it again")
        return path

    def _repos(self) -> list[tuple[str, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for org in sorted(self.root.iterdir()):
            if org.name.startswith(".") or not org.is_dir():
                continue
            for name in sorted(org.iterdir()):
                if not name.name.startswith(".") and (name / "refs" / DEFAULT_BRANCH).is_file():
                    found.append((f"{org.name}/{name.name}", name))
        return found

    def list(self, modality: str | None = None) -> list[tuple[str, AdapterSummary]]:
        out = []
        for repo, repo_dir in self._repos():
            revision = self._read_ref(repo_dir, DEFAULT_BRANCH)
            try:
                config = read_package_config(repo_dir / "revisions" / str(revision), self.limits)
            except AdapterPackageError as e:
                warnings.warn(f"skipping {repo} in folder hub {self.root}: {e}", AdapterPackageWarning, stacklevel=2)
                continue
            if modality is None or config.modality == modality:
                out.append((repo, AdapterSummary.from_config(repo, revision, config)))
        return out

    def revisions(self, repo: str) -> list[str]:
        """Every published revision of ``repo``, newest first."""
        commits = []
        for path in (self._repo_dir(repo) / "commits").glob("*.json"):
            if atomic.TMP_MARKER in path.name:
                continue
            try:
                commits.append((json.loads(path.read_text(encoding="utf-8"))["created_ns"], path.stem))
            except (ValueError, KeyError, OSError):
                continue
        return [rev for _, rev in sorted(commits, reverse=True)]

    def info(self, repo: str, revision: str | None = None) -> RepoInfo:
        path, resolved = self._resolve(repo, revision)
        config = read_package_config(path, self.limits)
        try:
            message = json.loads((path.parent.parent / "commits" / f"{resolved}.json").read_text("utf-8"))["message"]
        except (OSError, ValueError, KeyError):
            message = None
        files = sorted(scan_package_files(path, self.limits))
        return RepoInfo(repo, resolved, AdapterSummary.from_config(repo, resolved, config), files, message,
                        self.revisions(repo))

