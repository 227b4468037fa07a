"""Compatibility and safety checks of an adapter package, run before any weight is read.

The host passes what it knows (installed modalities, its LLM's hidden size and fingerprint, the tensor specs an
untrained adapter built from the config has); these functions read only file listings, the JSON config and
the safetensors headers.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .config import AdapterConfig
from .errors import (
    FingerprintMismatchError, ForcedLoadWarning, HiddenSizeMismatchError, ModalityPluginMissingError,
    PackageCorruptError, PackageFileMissingError, PackageTooLargeError, TensorMismatchError, UnsafePackageError,
)
from .layout import (
    CONFIG_NAME, DEFAULT_LIMITS, FORBIDDEN_SUFFIXES, LORA_CONFIG_NAME, LORA_DIR, LORA_WEIGHTS_NAME, WEIGHTS_FORMAT,
    WEIGHTS_NAME, PackageLimits,
)
from .schema import parse_config
from .st_header import SafetensorsHeader, normalize_dtype, read_safetensors_header

__all__ = [
    "TensorSpec", "CheckedPackage", "check_member_name", "scan_package_files", "read_package_config",
    "check_compatibility", "check_weights_header", "check_package", "tensor_specs", "plugin_package_name",
]

#: Expected ``(shape, dtype)`` of one tensor; dtype as a torch dtype, ``"float32"`` or a safetensors code, or
#: None to accept any dtype (a host that casts weights on load).
TensorSpec = tuple[Sequence[int], Any]


def plugin_package_name(modality: str) -> str:
    """The pip distribution that provides a modality (``imu`` -> ``anymal-plugin-imu``)."""
    return f"anymal-plugin-{modality}"


def check_member_name(name: str) -> PurePosixPath:
    """Refuse a file name (as a hub lists it) that is absolute, escapes the package, or may hold a pickle."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafePackageError(f"package file name {name!r} is absolute or malformed: a package only holds "
                                 f"relative paths; this package is corrupt or malicious, do not use it")
    path = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise UnsafePackageError(f"package file name {name!r} escapes the package folder (path traversal): this "
                                 f"package is corrupt or malicious, do not use it")
    if name.lower().endswith(FORBIDDEN_SUFFIXES):
        raise UnsafePackageError(
            f"package holds {name!r}, a pickle-capable format that anymal never loads (pickles run code): only "
            f"safetensors are read. Remove the file and republish (save weights with save_adapter_package)")
    return path


_BOOKKEEPING_DIRS = frozenset({".cache", ".git", ".huggingface"})


def _link_roots(folder: Path) -> list[Path]:
    """Where links inside ``folder`` may point: the folder itself, and for a Hugging Face cache snapshot
    (``models--org--name/snapshots/<sha>``) the repo's ``blobs/`` that its files link to."""
    roots = [folder.resolve()]
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        roots.append((folder.parent.parent / "blobs").resolve())
    return roots


def scan_package_files(folder: str | os.PathLike[str], limits: PackageLimits = DEFAULT_LIMITS) -> dict[str, int]:
    """Every file in the package -> its size, after refusing links that leave the package, unsafe names,
    pickle-capable files, and sizes over ``limits``. Hub bookkeeping folders (``.cache/``, ``.git/``) are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PackageFileMissingError(f"adapter package folder {folder} does not exist or is not a folder: check the "
                                      f"path, or pull the adapter again")
    roots = _link_roots(folder)
    sizes: dict[str, int] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(folder)
        # Hub bookkeeping folders (huggingface_hub's .cache/, a git checkout's .git/) are not part of the package.
        dirnames[:] = [d for d in dirnames if not (rel_dir == Path(".") and d in _BOOKKEEPING_DIRS)]
        for name in [*dirnames, *filenames]:
            full = here / name
            rel = (rel_dir / name).as_posix()
            if full.is_symlink():
                target = full.resolve()
                if not any(target == r or r in target.parents for r in roots):
                    raise UnsafePackageError(
                        f"package entry {rel!r} is a link to {target}, outside the package: links are refused so a "
                        f"package cannot read other files; replace it with the real file and republish")
                if name in dirnames:
                    raise UnsafePackageError(f"package entry {rel!r} is a linked folder: replace it with a real folder")
            if name in dirnames:
                continue
            check_member_name(rel)
            size = full.stat().st_size
            if size > limits.max_file_bytes:
                raise PackageTooLargeError(f"package file {rel!r} is {size} bytes, over the {limits.max_file_bytes}-byte "
                                           f"limit: raise PackageLimits.max_file_bytes if the adapter is genuine")
            total += size
            sizes[rel] = size
    if len(sizes) > limits.max_files:
        raise PackageTooLargeError(f"package holds {len(sizes)} files, over the limit of {limits.max_files}: an adapter "
                                   f"package holds a config, weights, a README and an optional lora/ folder")
    if total > limits.max_total_bytes:
        raise PackageTooLargeError(f"package is {total} bytes, over the {limits.max_total_bytes}-byte limit: raise "
                                   f"PackageLimits.max_total_bytes if the adapter is genuine")
    return sizes


def _read_json(path: Path, limits: PackageLimits, what: str) -> Any:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PackageFileMissingError(f"{what} is missing from {path.parent}: the package is incomplete; export it "
                                      f"with save_adapter_package or pull it again") from None
    if size > limits.max_config_bytes:
        raise PackageTooLargeError(f"{what} is {size} bytes, over the {limits.max_config_bytes}-byte limit for a "
                                   f"config: the file is corrupt or not a config")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackageCorruptError(f"{what} is not valid JSON ({e}): the file is corrupt or was edited by hand; "
                                  f"fix it or export the adapter again") from None


def read_package_config(folder: str | os.PathLike[str], limits: PackageLimits = DEFAULT_LIMITS) -> AdapterConfig:
    """Read, migrate and validate ``anymal_adapter.json`` (size-limited; never touches the weights)."""
    config = parse_config(_read_json(Path(folder) / CONFIG_NAME, limits, CONFIG_NAME), CONFIG_NAME)
    if config.projector.out_dim != config.llm.hidden_size:
        raise PackageCorruptError(
            f"{CONFIG_NAME}: projector.out_dim is {config.projector.out_dim} but llm.hidden_size is "
            f"{config.llm.hidden_size}; the projector must output the LLM's hidden size: fix the config")
    return config


def check_compatibility(
    config: AdapterConfig,
    *,
    installed_modalities: Collection[str] | None = None,
    host_hidden_size: int | None = None,
    host_fingerprint: str | None = None,
    host_llm_name: str | None = None,
    force: bool = False,
) -> None:
    """Refuse an adapter the host cannot run. Each argument left ``None`` skips its check.

    ``force=True`` lets a fingerprint mismatch through with a :class:`ForcedLoadWarning` (same hidden size, a
    different checkpoint of the LLM: it runs, quality is unknown). A hidden size mismatch is never forced: the
    tokens would not even fit.
    """
    if installed_modalities is not None and config.modality not in installed_modalities:
        have = ", ".join(sorted(installed_modalities)) or "none"
        raise ModalityPluginMissingError(
            f"adapter {config.name!r} is for modality {config.modality!r}, which no installed plugin provides "
            f"(installed: {have}): pip install {plugin_package_name(config.modality)}")
    host = f" ({host_llm_name})" if host_llm_name else ""
    if host_hidden_size is not None and config.llm.hidden_size != host_hidden_size:
        raise HiddenSizeMismatchError(
            f"adapter {config.name!r} expects hidden size {config.llm.hidden_size}, host LLM{host} has "
            f"{host_hidden_size}: pull the adapter trained for {host_llm_name or 'the host LLM'}, or start the host "
            f"with {config.llm.name}")
    if host_fingerprint is not None and config.llm.fingerprint != host_fingerprint:
        message = (f"adapter {config.name!r} was trained against {config.llm.name} (fingerprint "
                   f"{config.llm.fingerprint[:16]}), but the host LLM{host} has fingerprint {host_fingerprint[:16]}: "
                   f"its embedding space differs")
        if not force:
            raise FingerprintMismatchError(
                message + f"; pull the adapter trained for {host_llm_name or 'the host LLM'}, start the host with "
                f"{config.llm.name}, or pass force=True to load it anyway (outputs may be garbage)")
        warnings.warn(message + "; loading anyway because force=True, outputs may be garbage", ForcedLoadWarning,
                      stacklevel=2)


def _fmt(spec: tuple[tuple[int, ...], str]) -> str:
    return f"{list(spec[0])} {spec[1]}"


def check_weights_header(
    header: SafetensorsHeader,
    config: AdapterConfig,
    expected_tensors: Mapping[str, TensorSpec] | None = None,
) -> None:
    """Compare ``adapter.safetensors``' header with the config: its metadata, its tensor name prefixes, and (when
    the host passes ``expected_tensors``) every name, shape and dtype."""
    meta = header.metadata
    wanted = {"schema_version": str(config.schema_version), "llm_fingerprint": config.llm.fingerprint,
              "modality": config.modality, "format": WEIGHTS_FORMAT}
    wrong = [f"{k}={meta.get(k)!r} (config says {v!r})" for k, v in wanted.items() if meta.get(k) != v]
    if wrong:
        raise PackageCorruptError(
            f"{WEIGHTS_NAME} metadata does not match {CONFIG_NAME}: {'; '.join(wrong)}. The weights belong to another "
            f"adapter or were saved without anymal: export the package again with save_adapter_package")
    allowed = ("projector.", "encoder.") if config.encoder.weights_included else ("projector.",)
    stray = sorted(n for n in header.tensors if not n.startswith(allowed))
    if stray:
        raise TensorMismatchError(
            f"{WEIGHTS_NAME} holds tensors outside {' / '.join(p + '*' for p in allowed)}: {', '.join(stray[:5])}"
            + ("" if config.encoder.weights_included else " (encoder.weights_included is false)")
            + ": export the package again from the trained adapter (ModalityAdapter.weights_for_saving)")
    if expected_tensors is None:
        return
    expected = {k: (tuple(int(d) for d in shape), None if dtype is None else normalize_dtype(dtype))
                for k, (shape, dtype) in expected_tensors.items()}
    actual = {k: (v.shape, v.dtype) for k, v in header.tensors.items()}
    problems: list[str] = []
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if extra:
        problems.append(f"unexpected tensors: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    for name in sorted(set(expected) & set(actual)):
        if expected[name][0] != actual[name][0]:
            problems.append(f"{name} has shape {list(actual[name][0])}, expected {list(expected[name][0])}")
        elif expected[name][1] is not None and expected[name][1] != actual[name][1]:
            problems.append(f"{name} has dtype {actual[name][1]}, expected {expected[name][1]}")
    if problems:
        raise TensorMismatchError(
            f"{WEIGHTS_NAME} of adapter {config.name!r} does not match the adapter its config describes "
            f"({config.encoder.name} encoder, {config.projector.type} projector): {'; '.join(problems[:8])}. The "
            f"weights and {CONFIG_NAME} come from different adapters: export the package again from the trained "
            f"adapter with save_adapter_package")


@dataclass(frozen=True)
class CheckedPackage:
    """What the checks found; the weights themselves are still unread."""

    # The package folder.
    folder: Path
    # The parsed (and migrated) config.
    config: AdapterConfig
    # The validated header of ``adapter.safetensors``.
    header: SafetensorsHeader
    # The ``lora/`` folder in peft's format, or None when the package has none.
    lora_dir: Path | None
    # Every package file (relative POSIX path) -> size in bytes.
    files: dict[str, int]


def _check_lora(folder: Path, config: AdapterConfig, files: Iterable[str], limits: PackageLimits) -> Path | None:
    lora_dir = folder / LORA_DIR
    has_lora = any(f.startswith(LORA_DIR + "/") for f in files)
    if not has_lora:
        if config.lora is not None:
            raise PackageFileMissingError(f"{CONFIG_NAME} declares a LoRA config but the package has no {LORA_DIR}/ "
                                          f"folder: pull the package again, or export it with lora_dir=...")
        return None
    if config.lora is None:
        raise PackageCorruptError(f"the package has a {LORA_DIR}/ folder but {CONFIG_NAME} declares no LoRA config "
                                  f"('lora' is null): export the package again with save_adapter_package")
    if not isinstance(_read_json(lora_dir / LORA_CONFIG_NAME, limits, f"{LORA_DIR}/{LORA_CONFIG_NAME}"), dict):
        raise PackageCorruptError(f"{LORA_DIR}/{LORA_CONFIG_NAME} is not a JSON object: export the LoRA again with "
                                  f"peft's save_pretrained")
    read_safetensors_header(lora_dir / LORA_WEIGHTS_NAME, max_header_bytes=limits.max_header_bytes)
    return lora_dir


def check_package(
    folder: str | os.PathLike[str],
    *,
    installed_modalities: Collection[str] | None = None,
    host_hidden_size: int | None = None,
    host_fingerprint: str | None = None,
    host_llm_name: str | None = None,
    expected_tensors: Mapping[str, TensorSpec] | None = None,
    force: bool = False,
    limits: PackageLimits = DEFAULT_LIMITS,
) -> CheckedPackage:
    """Run every check on a package folder without reading a weight: file safety and sizes, config (schema),
    modality plugin, hidden size, fingerprint, safetensors header vs config and ``expected_tensors``, and the
    ``lora/`` folder. Raises an :class:`~adapters_hub.errors.AdapterPackageError` subclass on the first problem."""
    folder = Path(folder)
    files = scan_package_files(folder, limits)
    config = read_package_config(folder, limits)
    check_compatibility(config, installed_modalities=installed_modalities, host_hidden_size=host_hidden_size,
                        host_fingerprint=host_fingerprint, host_llm_name=host_llm_name, force=force)
    if WEIGHTS_NAME not in files:
        raise PackageFileMissingError(f"{WEIGHTS_NAME} is missing from {folder}: the package is incomplete; pull it "
                                      f"again or export it with save_adapter_package")
    header = read_safetensors_header(folder / WEIGHTS_NAME, max_header_bytes=limits.max_header_bytes)
    check_weights_header(header, config, expected_tensors)
    lora_dir = _check_lora(folder, config, files, limits)
    return CheckedPackage(folder, config, header, lora_dir, files)


def tensor_specs(tensors: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: tensor}`` -> ``{name: (shape, dtype code)}``: what the host passes as ``expected_tensors``,
    computed from ``ModalityAdapter.from_config(config).weights_for_saving()`` (an untrained adapter)."""
    return {k: (tuple(v.shape), normalize_dtype(v.dtype)) for k, v in tensors.items()}
