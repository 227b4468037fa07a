"""What several ``anymal`` command modules share: warnings shown as one line each, and settings read at call
time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

__all__ = ["echo_warnings", "hf_endpoint", "adapter_cache"]


def hf_endpoint() -> str | None:
    """$HF_ENDPOINT read now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT") or None


def adapter_cache() -> Path:
    from .paths import anymal_home

    return anymal_home() / "adapters"


class echo_warnings:
    """Print the adapter warnings (forced load, newer config, offline hub) a command meets as ``warning: ...``."""

    def __enter__(self) -> None:
        import warnings

        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc_info) -> None:
        import warnings

        self._catcher.__exit__(*exc_info)
        hub_errors = sys.modules.get("adapters_hub.errors")
        ours = hub_errors.AdapterPackageWarning if hub_errors is not None else ()
        seen = set()
        for w in self._caught:
            text = str(w.message)
            if not (ours and issubclass(w.category, ours)):  # not ours: shown as Python would have
                if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
                continue
            if text not in seen:
                seen.add(text)
                click.echo(click.style("warning: ", fg="yellow") + text, err=True)
