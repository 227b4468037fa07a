"""Where anymal keeps its files: ``$ANYMAL_HOME`` (default ``~/.cache/anymal``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["anymal_home"]


def anymal_home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("ANYMAL_HOME") or Path.home() / ".cache" / "anymal").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
