"""Crash-safe file operations: build in a temporary sibling, fsync, then ``os.replace`` into place, so a reader
sees either the old state or the complete new one, never a half-written folder."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

__all__ = ["TMP_MARKER", "temp_sibling", "fsync_file", "fsync_dir", "fsync_tree", "copy_file", "write_file_atomic",
           "write_text_atomic", "replace_dir"]

#: Part of every temporary name; listings skip names containing it (a crash may leave one behind).
TMP_MARKER = ".tmp-"


def temp_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` (same filesystem, so ``os.replace`` is atomic)."""
    return path.parent / f".{path.name}{TMP_MARKER}{uuid.uuid4().hex[:12]}"


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Persist a folder's entries (a rename is durable only once its folder is synced). No-op where folders
    cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file, then every folder bottom-up, under ``root``."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))


def copy_file(src: Path, dst: Path) -> None:
    """Copy file contents (never a link: links are followed, so the copy holds real bytes)."""
    shutil.copyfile(src, dst, follow_symlinks=True)


def write_file_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Replace ``path`` with what ``write(tmp)`` writes to a temporary sibling, atomically: readers see the old
    file or the whole new one. ``write`` may be any writer that takes a path (safetensors' ``save_file``)."""
    tmp = temp_sibling(path)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (used for refs: readers never see a partial ref)."""
    write_file_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def replace_dir(tmp: Path, dst: Path) -> None:
    """Move the complete folder ``tmp`` to ``dst``. A folder cannot replace a non-empty one in one rename, so an
    existing ``dst`` is first renamed aside (readers may briefly find no folder, never a partial one)."""
    old = None
    if dst.exists():
        old = temp_sibling(dst)
        os.replace(dst, old)
    try:
        os.replace(tmp, dst)
    except BaseException:
        if old is not None:
            os.replace(old, dst)
        raise
    fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
