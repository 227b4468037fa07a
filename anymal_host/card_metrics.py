"""Write evaluation figures into an adapter package: its ``anymal_adapter.json`` metrics and model card."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from adapters_hub import read_package_config, save_adapter_package
from adapters_hub.layout import LORA_DIR, WEIGHTS_NAME

__all__ = ["write_metrics", "prefixed"]

_COMMANDS_HEADING = "Evaluation figures measured with:"


def prefixed(metrics: Mapping[str, Any], prefix: str | None) -> dict[str, Any]:
    """``metrics`` with every name prefixed ``<prefix>_`` (none when ``prefix`` is empty)."""
    return {f"{prefix}_{k}" if prefix else k: v for k, v in metrics.items()}


def _earlier_commands(readme: Path) -> list[str]:
    """The commands the card's "Evaluation figures measured with" block lists already (none if it has none)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if _COMMANDS_HEADING not in text:
        return []
    block = text.split(_COMMANDS_HEADING, 1)[1].split("```bash", 1)[-1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("anymal ")]


def write_metrics(folder: Path, metrics: Mapping[str, Any], command: str, notes: str = "") -> None:
    """Rewrite the package at ``folder`` with ``metrics`` merged into its config, and a model card that states
    them with the command that measured them. The package is rewritten atomically; trainer state files of a
    checkpoint are not carried over (the result is a clean, publishable package)."""
    from safetensors.torch import load_file

    config = read_package_config(folder)
    tensors = load_file(str(folder / WEIGHTS_NAME))
    merged = {**config.metrics, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}}
    config = dataclasses.replace(config, metrics=merged)
    # The commands of earlier evaluations stay listed: a card can hold figures from several (one per data set
    # or split, told apart by their metric prefixes), and each figure should say how it was measured.
    commands = [c for c in _earlier_commands(folder / "README.md") if c != command] + [command]
    extra = f"{_COMMANDS_HEADING}\n\n```bash\n" + "\n".join(commands) + "\n```\n"
    if notes:
        extra += "\n" + notes.strip() + "\n"
    lora = folder / LORA_DIR
    save_adapter_package(folder, config, tensors, lora_dir=lora if lora.is_dir() else None, readme_extra=extra)
