"""Where anymal keeps its files: ``$ANYMAL_HOME`` (default ``~/.cache/anymal``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["anymal_home", "current_umask", "honour_umask"]


def anymal_home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("ANYMAL_HOME") or Path.home() / ".cache" / "anymal").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def current_umask() -> int:
    """The process's umask. Linux reports it in /proc; elsewhere it can only be read by setting it, so it is
    set back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(root: Path) -> None:
    """Give ``root`` and everything below it the permissions a plain ``mkdir`` / ``open`` would have given
    (0755 / 0644 under umask 022). Some writers create private files (safetensors writes 0600,
    ``tempfile.mkdtemp`` makes 0700 folders), which other users of a shared cache then cannot read. Links are
    left alone."""
    mask = current_umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)
