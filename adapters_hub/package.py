"""Saving and loading an adapter package folder.

    anymal_adapter.json     the AdapterConfig (schema_version, modality, encoder, projector, LLM, LoRA, metrics)
    adapter.safetensors     projector (+ encoder) weights; metadata repeats schema_version, llm_fingerprint, modality
    lora/                   optional, peft's own format: adapter_config.json + adapter_model.safetensors
    README.md               Hub model card
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import copy_file, fsync_tree, replace_dir, temp_sibling
from .card import render_model_card
from .checks import CheckedPackage, TensorSpec, check_package
from .files import member_path, read_regular_file
from .config import SCHEMA_VERSION, AdapterConfig
from .errors import AdapterPackageError, PackageCorruptError, PackageFileMissingError, TensorMismatchError
from .layout import weight_prefixes
from .layout import (
    CONFIG_NAME, DEFAULT_LIMITS, LORA_CONFIG_NAME, LORA_DIR, LORA_WEIGHTS_NAME, README_NAME, WEIGHTS_FORMAT,
    WEIGHTS_NAME, PackageLimits,
)
from .schema import ANYMAL_VERSION, config_to_json
from .st_header import SafetensorsHeader, parse_safetensors_header
from .validate import validate_config_data

if TYPE_CHECKING:  # torch loads on first save/load, not at import (the CLI lists hubs without it)
    import torch

__all__ = ["save_adapter_package", "load_adapter_package", "read_checked_weights", "read_as_checked",
           "check_weight_values", "weights_metadata"]


def weights_metadata(config: AdapterConfig) -> dict[str, str]:
    """The safetensors ``__metadata__`` of ``adapter.safetensors``: enough to tell, from the header alone,
    which schema wrote the weights and which LLM they belong to."""
    return {"schema_version": str(config.schema_version), "llm_fingerprint": config.llm.fingerprint,
            "modality": config.modality, "format": WEIGHTS_FORMAT}


def _validate_for_saving(config: AdapterConfig, tensors: Mapping[str, "torch.Tensor"]) -> None:
    import torch

    if config.projector.out_dim != config.llm.hidden_size:
        raise AdapterPackageError(f"projector.out_dim is {config.projector.out_dim} but llm.hidden_size is "
                                  f"{config.llm.hidden_size}: the projector must output the LLM's hidden size")
    # The same field rules every reader applies: never write a package that hosts would refuse.
    validate_config_data(json.loads(config_to_json(config)), f"config of adapter {config.name!r}")
    if not tensors:
        raise TensorMismatchError("no tensors to save: pass ModalityAdapter.weights_for_saving()")
    allowed = weight_prefixes(config.encoder.weights_included)
    stray = sorted(k for k in tensors if not k.startswith(allowed))
    if stray:
        raise TensorMismatchError(f"tensors {stray[:5]} are not under {' / '.join(p + '*' for p in allowed)}: save "
                                  f"ModalityAdapter.weights_for_saving(), or set encoder.weights_included")
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TensorMismatchError(f"{name} is a {type(t).__name__}, not a torch.Tensor")


def _lora_config(lora_dir: Path) -> dict:
    for name in (LORA_CONFIG_NAME, LORA_WEIGHTS_NAME):
        if not (lora_dir / name).is_file():
            raise PackageFileMissingError(f"{lora_dir} has no {name}: pass the folder peft's save_pretrained wrote "
                                          f"(with safe_serialization=True, the default)")
    return json.loads((lora_dir / LORA_CONFIG_NAME).read_text(encoding="utf-8"))


def save_adapter_package(
    folder: str | os.PathLike[str],
    config: AdapterConfig,
    tensors: Mapping[str, "torch.Tensor"],
    lora_dir: str | os.PathLike[str] | None = None,
    readme_extra: str = "",
    *,
    license: str = "apache-2.0",
) -> AdapterConfig:
    """Write a package to ``folder`` atomically (built in a temporary sibling, fsynced, then moved into place;
    an existing package there is replaced). Returns the config as written: ``anymal_version`` and
    ``schema_version`` are stamped, and ``lora`` is filled from ``lora_dir/adapter_config.json`` when unset."""
    from safetensors.torch import save_file

    folder = Path(folder)
    _validate_for_saving(config, tensors)
    config = dataclasses.replace(config, anymal_version=ANYMAL_VERSION, schema_version=SCHEMA_VERSION)
    if lora_dir is not None:
        lora_config = _lora_config(Path(lora_dir))
        config = dataclasses.replace(config, lora=config.lora if config.lora is not None else lora_config)
    elif config.lora is not None:
        raise PackageFileMissingError(f"config {config.name!r} declares a LoRA but no lora_dir was given: pass the "
                                      f"folder peft's save_pretrained wrote, or set config.lora to None")
    if folder.exists() and any(folder.iterdir()) and not (folder / CONFIG_NAME).is_file():
        raise AdapterPackageError(f"{folder} exists and is not an adapter package: choose an empty or new folder "
                                  f"(refusing to replace unrelated files)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(folder)
    try:
        tmp.mkdir()
        (tmp / CONFIG_NAME).write_text(config_to_json(config), encoding="utf-8")
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS_NAME),
                  metadata=weights_metadata(config))
        if lora_dir is not None:
            (tmp / LORA_DIR).mkdir()
            for name in (LORA_CONFIG_NAME, LORA_WEIGHTS_NAME):
                copy_file(Path(lora_dir) / name, tmp / LORA_DIR / name)
        (tmp / README_NAME).write_text(render_model_card(config, license=license, readme_extra=readme_extra),
                                       encoding="utf-8")
        fsync_tree(tmp)
        replace_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return config


def read_checked_weights(
    checked: CheckedPackage,
    *,
    limits: PackageLimits = DEFAULT_LIMITS,
    device: str = "cpu",
    check_finite: bool = True,
) -> dict[str, "torch.Tensor"]:
    """Read ``adapter.safetensors`` of a package :func:`~adapters_hub.checks.check_package` passed, once: the
    file's bytes are read in one go, their header is parsed again and must equal the one checked, and the
    tensors are then made from those same bytes. A file replaced between the check and the read is refused
    instead of reaching ``load_state_dict``. ``check_finite`` refuses NaN, inf and values past
    ``limits.max_abs_weight``."""
    tensors = read_as_checked(member_path(checked.folder, WEIGHTS_NAME), checked.header, name=WEIGHTS_NAME,
                              limits=limits)
    if check_finite:
        check_weight_values(tensors, limits, f"{WEIGHTS_NAME} of adapter {checked.config.name!r}",
                            inspect_hint=" (or pass check_finite=False to inspect it)")
    return {k: v.to(device) for k, v in tensors.items()} if device != "cpu" else tensors


def read_as_checked(path: str | os.PathLike[str], checked_header: SafetensorsHeader, *, name: str,
                    limits: PackageLimits = DEFAULT_LIMITS) -> dict[str, "torch.Tensor"]:
    """The tensors of the safetensors file at ``path`` (package file ``name``) whose header was checked as
    ``checked_header``, from one read: the header of the bytes read must equal the checked one, so a file
    replaced between the check and the read is refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    data = read_regular_file(path, max_bytes=limits.max_file_bytes, what=name)
    header = parse_safetensors_header(data, max_header_bytes=limits.max_header_bytes, name=name)
    if header.tensors != checked_header.tensors or header.metadata != checked_header.metadata:
        raise PackageCorruptError(f"{name} changed between its check and its read: do not edit a package "
                                  f"while a host loads it; pull or export it again")
    try:
        return load_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise PackageCorruptError(f"{name} could not be read ({e}): it is corrupt; pull the package "
                                  f"again") from None


def check_weight_values(tensors: Mapping[str, "torch.Tensor"], limits: PackageLimits, what: str, *,
                        inspect_hint: str = "") -> None:
    """Refuse NaN, inf and floating-point values past ``limits.max_abs_weight`` in ``tensors`` (``what``: the
    file, for the message)."""
    import torch

    floats = {k: t for k, t in tensors.items() if t.is_floating_point() and t.numel()}
    bad = sorted(k for k, t in floats.items() if not bool(torch.isfinite(t).all()))
    if bad:
        raise PackageCorruptError(
            f"{what} holds NaN or inf in {', '.join(bad[:5])}: the training run diverged; publish an earlier "
            f"checkpoint{inspect_hint}")
    huge = sorted(k for k, t in floats.items() if float(t.abs().max()) > limits.max_abs_weight)
    if huge:
        raise PackageCorruptError(
            f"{what} holds values over {limits.max_abs_weight:g} in magnitude in "
            f"{', '.join(huge[:5])}: no trained adapter has weights that large (they would drown the LLM's own "
            f"embeddings); the file is corrupt or was tampered with. Publish an earlier checkpoint, or raise "
            f"PackageLimits.max_abs_weight if the adapter is genuine")


def load_adapter_package(
    folder: str | os.PathLike[str],
    *,
    installed_modalities: Collection[str] | None = None,
    host_hidden_size: int | None = None,
    host_fingerprint: str | None = None,
    host_llm_name: str | None = None,
    expected_tensors: Mapping[str, TensorSpec] | None = None,
    force: bool = False,
    limits: PackageLimits = DEFAULT_LIMITS,
    device: str = "cpu",
    check_finite: bool = True,
) -> tuple[AdapterConfig, dict[str, "torch.Tensor"]]:
    """Check a package (see :func:`~adapters_hub.checks.check_package`; nothing is read before every check
    passes), then read ``adapter.safetensors`` once (:func:`read_checked_weights`). Returns ``(config,
    tensors)``, equal to what was saved. ``check_finite`` refuses weights holding NaN, inf or values past
    ``limits.max_abs_weight``. The LoRA folder, when present, is ``Path(folder) / "lora"`` (peft loads it as it
    is)."""
    checked = check_package(folder, installed_modalities=installed_modalities, host_hidden_size=host_hidden_size,
                            host_fingerprint=host_fingerprint, host_llm_name=host_llm_name,
                            expected_tensors=expected_tensors, force=force, limits=limits)
    return checked.config, read_checked_weights(checked, limits=limits, device=device, check_finite=check_finite)
