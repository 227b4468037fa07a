"""Checkpoints: each is an adapter package (publishable as it is) plus the trainer's state for resuming."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from adapters_hub import AdapterConfig, save_adapter_package
from adapters_hub.atomic import write_file_atomic

from .label_heads import LABEL_HEADS

__all__ = ["save_checkpoint", "load_trainer_state", "export_package", "TRAINER_STATE", "OPTIMIZER_STATE",
           "TRAINER_FILES"]

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.safetensors"
#: Files a checkpoint holds beside its adapter package: trainer state, never published or bundled.
TRAINER_FILES = (TRAINER_STATE, OPTIMIZER_STATE, LABEL_HEADS)


def export_package(checkpoint: Path, destination: Path) -> list[str]:
    """Copy a checkpoint's adapter package to ``destination`` without its trainer state (atomically: built
    beside it, then moved into place). Only the files the package check listed are copied, each read as a
    regular file inside the package: no link is followed out of it and no hub bookkeeping folder is carried.
    Returns the names of the files left out."""
    from adapters_hub import check_package
    from adapters_hub.atomic import fsync_tree, replace_dir, temp_sibling
    from adapters_hub.hub import copy_package_files

    checked = check_package(checkpoint)  # never export what a host would refuse
    left_out = [name for name in TRAINER_FILES if name in checked.files]
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(destination)
    try:
        tmp.mkdir()
        copy_package_files(checkpoint, [rel for rel in checked.files if rel not in TRAINER_FILES], tmp)
        fsync_tree(tmp)
        replace_dir(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return left_out


def save_checkpoint(folder: Path, config: AdapterConfig, tensors: dict[str, torch.Tensor], *, lora_dir: Path | None,
                    optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any], readme_extra: str = "",
                    label_heads: torch.nn.Module | None = None) -> None:
    """Write the adapter package, then the trainer state beside it (safetensors + JSON: no pickles), with the
    label classifiers of a ``--label-loss`` run."""
    save_adapter_package(folder, config, tensors, lora_dir=lora_dir, readme_extra=readme_extra)
    if label_heads is not None:
        heads = {k: v.detach().cpu().contiguous() for k, v in label_heads.state_dict().items()}
        write_file_atomic(folder / LABEL_HEADS, lambda p: save_file(heads, str(p)))
    flat, groups = _flatten_optimizer(optimizer.state_dict())
    write_file_atomic(folder / OPTIMIZER_STATE, lambda p: save_file(flat, str(p)))
    payload = {**state, "optimizer_param_groups": groups, "scheduler": scheduler.state_dict()}
    write_file_atomic(folder / TRAINER_STATE, lambda p: p.write_text(json.dumps(payload, indent=1)))


def load_trainer_state(folder: Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """Restore optimiser and scheduler from a checkpoint; returns its state (step, history...)."""
    state_path, optimizer_path = folder / TRAINER_STATE, folder / OPTIMIZER_STATE
    if not state_path.is_file() or not optimizer_path.is_file():
        raise FileNotFoundError(f"{folder} is an adapter package without trainer state ({TRAINER_STATE}, "
                                f"{OPTIMIZER_STATE}): resume from a checkpoint folder written by `anymal train`")
    state = json.loads(state_path.read_text())
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(optimizer_path)), state.pop("optimizer_param_groups")))
    scheduler.load_state_dict(state.pop("scheduler"))
    return state


def prune_checkpoints(root: Path, keep: int) -> None:
    steps = sorted(root.glob("step-*"))
    for old in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    flat = {}
    for param_id, values in state_dict["state"].items():
        for key, value in values.items():
            flat[f"{param_id}.{key}"] = torch.as_tensor(value).detach().contiguous().clone()
    return flat, state_dict["param_groups"]


def _unflatten_optimizer(flat: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in flat.items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = tensor
    return {"state": state, "param_groups": groups}
