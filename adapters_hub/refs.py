"""Adapter refs: which hub holds a package and at which revision.

    org/name[@rev]                    Hugging Face Hub
    hf://org/name[@rev]               Hugging Face Hub (explicit)
    file:///abs/root/org/name[@rev]   folder hub rooted at /abs/root
    /path/to/package  ./package       a local package folder (an existing directory; a bare name such as
                                      ``runs`` too, since a Hub id always has an ``org/``)
    /abs/root/org/name@rev            a folder hub repo, by path

A bare ``org/name`` that is also a local folder is refused as ambiguous: write ``./org/name`` or
``hf://org/name``.

Where ``anymal hub push`` publishes (:func:`parse_destination`) the same forms apply, except that a path always
names a folder-hub repo ``root/org/name``, existing or not (the first push makes it), and never a package.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import InvalidRefError
from .layout import CONFIG_NAME

__all__ = ["AdapterRef", "parse_ref", "parse_destination", "is_bare_repo_id", "validate_repo_id",
           "validate_revision", "looks_like_path", "refuse_ambiguous_name"]

# Used with fullmatch: "$" also matches before a final newline, which would let "main\n" through.
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9._/-]{0,199}")
_FORMS = "org/name[@revision], hf://org/name[@revision], file:///abs/root/org/name[@revision], or a package folder"
_DESTINATIONS = "org/name (Hugging Face Hub), hf://org/name, file:///abs/root/org/name or root/org/name (folder hub)"


def looks_like_path(text: str) -> bool:
    """The one grammar for "is this a path?", shared by adapter refs and ``--llm``: absolute, ``./``/``../``,
    ``~``-based, or deeper than ``org/name``. Anything else (``name``, ``org/name``) is a Hub id."""
    base = text.split("@", 1)[0]  # a revision may hold slashes (refs/pr/1, feature/x): not part of the name
    return (text.startswith(("/", "./", "../", "~")) or text in (".", "..") or base.strip("/").count("/") > 1
            or (os.sep != "/" and os.sep in base))


def refuse_ambiguous_name(text: str, what: str, explicit_hub: str) -> None:
    """A bare Hub id that is also the name of a local folder names two things: refuse it rather than silently
    pick one (which of them was meant decides what weights are loaded). ``explicit_hub`` says how to name the
    Hub repo explicitly (``hf://org/name`` for adapters)."""
    if not looks_like_path(text) and Path(os.path.expanduser(text)).is_dir():
        raise InvalidRefError(
            f"{what} {text!r} names both the Hub repo {text} and the local folder ./{text}: write ./{text} for the "
            f"folder, or {explicit_hub} for the Hub")


def validate_repo_id(repo: str) -> str:
    """``org/name`` with Hub-safe characters (also what keeps folder-hub paths inside their root)."""
    parts = repo.split("/") if isinstance(repo, str) else []
    if len(parts) != 2 or not all(_NAME_PART.fullmatch(p) and ".." not in p for p in parts):
        raise InvalidRefError(f"{repo!r} is not a repo id: use 'org/name' (letters, digits, '.', '_', '-')")
    return repo


def validate_revision(revision: str) -> str:
    """A branch, tag or commit; no ``..`` or leading ``/`` (folder hubs store refs as files)."""
    if not isinstance(revision, str) or not _REVISION.fullmatch(revision) or ".." in revision or "//" in revision or revision.endswith("/"):
        raise InvalidRefError(f"{revision!r} is not a revision: use a branch ('main'), a tag or a commit hash")
    return revision


@dataclass(frozen=True)
class AdapterRef:
    """A parsed ref."""

    # Which hub: the Hugging Face Hub, a folder hub, or a package folder used in place.
    kind: Literal["hf", "folder", "local"]
    # ``org/name`` on the hub (None for a local package).
    repo: str | None = None
    # Branch, tag or commit; None means the hub's default (``main``).
    revision: str | None = None
    # Folder hub root (kind "folder") or the package folder (kind "local").
    path: Path | None = None

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        if self.kind == "hf":
            return f"hf://{self.repo}{rev}"
        if self.kind == "folder":
            return f"file://{(self.path / self.repo).as_posix()}{rev}"  # type: ignore[operator]
        return str(self.path)


def _split_revision(text: str) -> tuple[str, str | None]:
    head, sep, rev = text.rpartition("@")
    if not sep:
        return text, None
    return head, validate_revision(rev)


def _hub_ref(text: str, ref: str) -> AdapterRef:
    repo, revision = _split_revision(text)
    try:
        validate_repo_id(repo)
    except InvalidRefError:
        raise InvalidRefError(f"cannot parse adapter ref {ref!r}: use {_FORMS}") from None
    return AdapterRef("hf", repo, revision)


def _path_ref(path: Path, ref: str) -> AdapterRef:
    """A filesystem path: a package folder, or ``root/org/name[@rev]`` in a folder hub."""
    if not path.is_absolute():
        path = path.absolute()
    if (path / CONFIG_NAME).is_file() or (path.is_dir() and "@" not in path.name and not (path / "refs").is_dir()):
        return AdapterRef("local", path=path)
    name, revision = _split_revision(path.name)
    repo_dir = path.with_name(name)
    repo = f"{repo_dir.parent.name}/{repo_dir.name}"
    try:
        validate_repo_id(repo)
    except InvalidRefError:
        raise InvalidRefError(f"{ref!r} is neither an adapter package folder (no {CONFIG_NAME}) nor a folder-hub "
                              f"repo root/org/name[@revision]: check the path, or use {_FORMS}") from None
    return AdapterRef("folder", repo, revision, repo_dir.parent.parent)


def parse_ref(ref: str | bytes | os.PathLike[str]) -> AdapterRef:
    """Parse a ref (see the module docstring). The grammar is explicit: ``hf://`` and bare ``org/name[@rev]``
    are the Hugging Face Hub, ``file://`` and anything that looks like a path (:func:`looks_like_path`) is a
    folder. A bare ``org/name`` that is also a local folder is refused (:func:`refuse_ambiguous_name`) instead
    of silently loading the folder's weights where the Hub's were meant, or the other way round."""
    if isinstance(ref, bytes):
        ref = os.fsdecode(ref)
    if isinstance(ref, os.PathLike):
        return _path_ref(Path(ref), str(ref))
    if not isinstance(ref, str):
        raise InvalidRefError(f"an adapter ref is text or a path, not {type(ref).__name__}: use {_FORMS}")
    text = ref.strip()
    if not text:
        raise InvalidRefError(f"empty adapter ref: use {_FORMS}")
    if text.startswith("hf://"):
        return _hub_ref(text[len("hf://"):], ref)
    if text.startswith("file://"):
        return _path_ref(_file_url_path(text, ref, "file:///abs/root/org/name[@revision]"), ref)
    if "://" in text:
        raise InvalidRefError(f"{ref!r}: unknown scheme; use {_FORMS}")
    candidate = Path(os.path.expanduser(text))
    if looks_like_path(text):
        base = Path(os.path.expanduser(_split_revision(text)[0]))
        if not candidate.is_dir() and not base.is_dir():
            raise InvalidRefError(f"{ref!r} looks like a path but no such folder exists: check the path")
        return _path_ref(candidate, ref)
    if "/" not in text.split("@", 1)[0] and candidate.is_dir():  # a single name can only be a folder
        return _path_ref(candidate, ref)
    refuse_ambiguous_name(_split_revision(text)[0], "adapter ref", f"hf://{text}")
    return _hub_ref(text, ref)


def is_bare_repo_id(ref: str | os.PathLike[str] | AdapterRef) -> bool:
    """Whether ``ref`` is a bare ``org/name[@rev]``: the one form that does not name its hub (``--hub`` /
    ``$ANYMAL_HUB`` choose it; the Hugging Face Hub by default). ``hf://``, ``file://`` and paths name theirs."""
    if not isinstance(ref, str):
        return False
    text = ref.strip()
    return "://" not in text and not looks_like_path(text) and "/" in text.split("@", 1)[0]


def _destination_path(path: Path, ref: str) -> AdapterRef:
    """``root/org/name[@rev]`` as a folder-hub repo, whether or not the folders exist yet."""
    path = Path(os.path.abspath(path))
    if (path / CONFIG_NAME).is_file():
        raise InvalidRefError(f"{ref!r} is an adapter package, not a place to publish to: name a folder-hub repo, "
                              f"root/org/name (or file:///root/org/name, or --hub ROOT org/name)")
    name, revision = _split_revision(path.name)
    repo_dir = path.with_name(name)
    repo = f"{repo_dir.parent.name}/{repo_dir.name}"
    root = repo_dir.parent.parent
    try:
        validate_repo_id(repo)
        if root == Path(root.anchor):  # /org/name: the filesystem's root as a hub is a missing folder, not a plan
            raise InvalidRefError(repo)
    except InvalidRefError:
        raise InvalidRefError(f"{ref!r} is not a folder-hub repo: a folder-hub destination is root/org/name, the "
                              f"hub's root folder and then the repo id; or use {_DESTINATIONS}") from None
    return AdapterRef("folder", repo, revision, root)


def parse_destination(ref: str | os.PathLike[str]) -> AdapterRef:
    """Parse where ``anymal hub push`` publishes: ``org/name`` and ``hf://org/name`` (Hugging Face Hub),
    ``file:///root/org/name`` and any path (:func:`looks_like_path`) such as ``/srv/hub/org/name`` or
    ``./hub/org/name`` (a folder hub rooted at ``root``). Unlike :func:`parse_ref`, a path need not exist (the
    first push makes the hub) and is never read as a package folder: a package is what is published, not where
    (one is refused). A bare ``org/name`` that is also a local folder is refused as ambiguous."""
    if isinstance(ref, os.PathLike):
        return _destination_path(Path(ref), str(ref))
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidRefError(f"empty or invalid destination {ref!r}: use {_DESTINATIONS}")
    text = ref.strip()
    if text.startswith("hf://"):
        return _hub_ref(text[len("hf://"):], ref)
    if text.startswith("file://"):
        return _destination_path(_file_url_path(text, ref, "file:///abs/root/org/name"), ref)
    if "://" in text:
        raise InvalidRefError(f"{ref!r}: unknown scheme; use {_DESTINATIONS}")
    if looks_like_path(text):
        return _destination_path(Path(os.path.expanduser(text)), ref)
    refuse_ambiguous_name(_split_revision(text)[0], "destination", f"hf://{text}")
    return _hub_ref(text, ref)


def _file_url_path(text: str, ref: object, form: str) -> Path:
    """The local path of a ``file://`` ref; only absolute paths on this machine (``file:///...``)."""
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidRefError(f"{ref!r}: a file ref needs an absolute path, {form}")
    return Path(unquote(parts.path))
