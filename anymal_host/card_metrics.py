"""Write evaluation figures into an adapter package: its ``anymal_adapter.json`` metrics and model card."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from adapters_hub import read_package_config, save_adapter_package
from adapters_hub.layout import LORA_DIR, WEIGHTS_NAME

__all__ = ["write_metrics"]


def write_metrics(folder: Path, metrics: Mapping[str, Any], command: str, notes: str = "") -> None:
    """Rewrite the package at ``folder`` with ``metrics`` merged into its config, and a model card that states
    them with the command that measured them. The package is rewritten atomically; trainer state files of a
    checkpoint are not carried over (the result is a clean, publishable package)."""
    from safetensors.torch import load_file

    config = read_package_config(folder)
    tensors = load_file(str(folder / WEIGHTS_NAME))
    merged = {**config.metrics, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}}
    config = dataclasses.replace(config, metrics=merged)
    extra = f"Evaluation figures measured with:\n\n```bash\n{command}\n```\n"
    if notes:
        extra += "\n" + notes.strip() + "\n"
    lora = folder / LORA_DIR
    save_adapter_package(folder, config, tensors, lora_dir=lora if lora.is_dir() else None, readme_extra=extra)
