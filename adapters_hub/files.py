"""Opening package files without being fooled by what sits at a path.

A package is read from folders other people wrote (a hub, a shared drive, a download): what is named
``anymal_adapter.json`` may be a folder, a named pipe (opening it for reading blocks forever), a device, or a
link swapped in after the checks ran. Every package file is therefore opened here: without following links,
without blocking, and refused unless the opened descriptor is a regular file. The checks and the read that
follows then see the same bytes (see :func:`read_regular_file`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from .errors import PackageCorruptError, PackageFileMissingError, PackageTooLargeError, UnsafePackageError

__all__ = ["file_sha256", "DuplicateKeyError", "unique_keys", "describe_mode", "require_regular", "hf_snapshot_blobs", "link_roots",
           "member_path", "open_regular", "read_regular_file"]

_KINDS = (
    (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a link"),
)


def describe_mode(mode: int) -> str:
    """What a file mode is, in words (``"a named pipe"``); ``"a regular file"`` for one."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((text for test, text in _KINDS if test(mode)), "not a regular file")


def require_regular(mode: int, what: str) -> None:
    """Refuse anything but a regular file: opening a pipe or device for reading can block or never end."""
    if not stat.S_ISREG(mode):
        raise UnsafePackageError(f"{what} is {describe_mode(mode)}, not a regular file: a package holds only regular "
                                 f"files and folders; replace it with the real file and publish again")


def hf_snapshot_blobs(folder: Path) -> Path | None:
    """``blobs/`` of a Hugging Face cache snapshot (``models--org--name/snapshots/<sha>``), whose files are links
    into it (the one kind of link a package may hold); None for any other folder."""
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        blobs = folder.parent.parent / "blobs"
        # Trust the layout only as huggingface_hub makes it: a real blobs/ beside snapshots/. A blobs/ that is
        # itself a link would make "links into blobs/" links to anywhere.
        if blobs.is_dir() and not blobs.is_symlink() and blobs.resolve() == folder.parent.parent.resolve() / "blobs":
            return blobs.resolve()
    return None


def link_roots(folder: Path) -> list[Path]:
    """Where links inside a package ``folder`` may point: the folder itself, and for a Hugging Face cache
    snapshot the repo's ``blobs/`` that its files link to."""
    blobs = hf_snapshot_blobs(folder)
    return [folder.resolve()] + ([blobs] if blobs is not None else [])


def member_path(folder: str | os.PathLike[str], rel: str) -> Path:
    """The real path of package file ``rel``: itself, or where its link points when that stays inside the
    package (a Hugging Face cache snapshot links every file into ``blobs/``). Open the result with
    :func:`open_regular`, which follows no further link."""
    folder = Path(folder)
    path = folder / rel
    if not path.is_symlink():
        return path
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise UnsafePackageError(f"package file {rel!r} is a link that leads nowhere: replace it with the real file "
                                 f"and publish again") from None
    if not any(target == root or root in target.parents for root in link_roots(folder)):
        raise UnsafePackageError(f"package file {rel!r} is a link to {target}, outside the package: links are refused "
                                 f"so a package cannot read other files; replace it with the real file")
    return target


def open_regular(path: str | os.PathLike[str], what: str | None = None) -> int:
    """An open, read-only descriptor of the regular file at ``path``.

    ``O_NOFOLLOW`` refuses a link in the last path component and ``O_NONBLOCK`` keeps a named pipe from
    blocking the open; the type is then checked on the descriptor itself, so a file swapped after the check
    cannot be what is read. The caller closes the descriptor."""
    what = what or str(path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise PackageFileMissingError(f"{what} is missing: the package is incomplete or changed while it was read; "
                                      f"download or export it again") from None
    except IsADirectoryError:
        raise UnsafePackageError(f"{what} is a folder, not a regular file: the package is malformed; export it "
                                 f"again with save_adapter_package") from None
    except OSError as e:  # ELOOP: a link where O_NOFOLLOW forbids one; EACCES; ENXIO (a socket)...
        if os.path.islink(path):
            raise UnsafePackageError(f"{what} is a link: package files are read only as regular files (a link may "
                                     f"point anywhere); replace it with the real file") from None
        raise PackageCorruptError(f"{what} cannot be opened ({e.strerror or e}): check its permissions, or "
                                  f"download the package again") from None
    try:
        require_regular(os.fstat(fd).st_mode, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int, what: str | None = None) -> bytes:
    """The whole content of the regular file at ``path``, refused before reading when it is over
    ``max_bytes``. One open, one read: what the caller checks is exactly what it then uses."""
    what = what or Path(path).name
    fd = open_regular(path, what)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise PackageTooLargeError(f"{what} is {size} bytes, over the {max_bytes}-byte limit: the file is corrupt "
                                       f"or not what its name says; if it is genuine, raise the matching PackageLimits "
                                       f"field")
        chunks, remaining = [], size
        with os.fdopen(fd, "rb", closefd=False) as f:
            while remaining > 0:
                chunk = f.read(min(remaining, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            if remaining or f.read(1):  # shrank or grew while being read
                raise PackageCorruptError(f"{what} changed while it was being read: do not edit a package while it "
                                          f"is loaded; download or export it again")
        return b"".join(chunks)
    finally:
        os.close(fd)



class DuplicateKeyError(ValueError):
    """A JSON object holds one key twice (``json`` keeps the last; other readers keep the first)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``object_pairs_hook`` for ``json.loads`` that refuses duplicate keys: a file whose readers could
    disagree on its fingerprint or schema version is not one file."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
