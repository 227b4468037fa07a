"""Compatibility and safety checks of an adapter package, run before any weight is read.

The host passes what it knows (installed modalities, its LLM's hidden size and fingerprint, the tensor specs an
untrained adapter built from the config has); these functions read only file listings, the JSON config and
the safetensors headers.
"""

from __future__ import annotations

import json
import os
import stat
import unicodedata
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
from .files import DuplicateKeyError, unique_keys
from .files import link_roots, member_path, read_regular_file, require_regular
from .layout import weight_prefixes
from .layout import (
    CONFIG_NAME, DEFAULT_LIMITS, FORBIDDEN_SUFFIXES, LORA_CONFIG_NAME, LORA_DIR, LORA_WEIGHTS_NAME, WEIGHTS_FORMAT,
    WEIGHTS_NAME, PackageLimits,
)
from .schema import MIN_SCHEMA_VERSION, parse_config
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
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name) or any(
            part.endswith((".", " ")) for part in name.split("/") if part not in (".", "..")):
        # Control characters corrupt listings and terminals; Windows drops a trailing dot or space, which would
        # turn 'model.pt.' into a pickle file there.
        raise UnsafePackageError(f"package file name {name!r} holds control characters or ends a part with a dot or "
                                 f"a space: rename the file (names must read the same on every system)")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise UnsafePackageError(f"package file name {name!r} escapes the package folder (path traversal): this "
                                 f"package is corrupt or malicious, do not use it")
    if name.lower().endswith(FORBIDDEN_SUFFIXES):
        raise UnsafePackageError(
            f"package holds {name!r}, a pickle-capable format that anymal never loads (pickles run code): only "
            f"safetensors are read. Remove the file and republish (save weights with save_adapter_package)")
    return path


#: Hub bookkeeping folders at the package root (huggingface_hub's ``.cache/``, a git checkout's ``.git/``): their
#: files are not part of the package and are never published, but their links are checked like any other.
_BOOKKEEPING_DIRS = frozenset({".cache", ".git", ".huggingface"})


#: Deepest nesting a package entry may have (a git checkout's .git/ reaches 4-6 levels).
_MAX_DEPTH = 16


def _cut(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:50] + "..." + text[-50:]


def _utf8_name(rel: str) -> None:
    """Refuse a file name that is not valid UTF-8 (os.walk hands it over with surrogate escapes): no hub can
    store it and no other machine would read the same name."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePackageError(f"package file name {rel.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8: "
                                 f"rename the file (package file names are UTF-8 text)") from None


def _entry_stat(full: Path, rel: str) -> os.stat_result:
    try:
        return full.lstat()
    except FileNotFoundError:
        raise PackageCorruptError(f"package file {rel!r} disappeared while the package was being checked: do not "
                                  f"change a package while it is read; pull or export it again") from None
    except OSError as e:
        raise PackageCorruptError(f"package file {rel!r} cannot be read ({e.strerror or e}): check its "
                                  f"permissions") from None


def _check_link(full: Path, rel: str, roots: list[Path], is_dir_entry: bool) -> os.stat_result:
    """A link is allowed only to a regular file inside the package (or the HF cache's blobs); returns the stat
    of what it points to."""
    try:
        target = full.resolve(strict=True)
        target_stat = target.stat()
    except (OSError, RuntimeError):  # dangling, a loop, or vanished
        raise UnsafePackageError(f"package entry {rel!r} is a link that leads nowhere (dangling or a loop): "
                                 f"replace it with the real file and republish") from None
    if not any(target == r or r in target.parents for r in roots):
        raise UnsafePackageError(
            f"package entry {rel!r} is a link to {target}, outside the package: links are refused so a "
            f"package cannot read (or publish) other files; replace it with the real file and republish")
    if is_dir_entry or stat.S_ISDIR(target_stat.st_mode):
        raise UnsafePackageError(f"package entry {rel!r} is a linked folder: replace it with a real folder")
    return target_stat


def scan_package_files(folder: str | os.PathLike[str], limits: PackageLimits = DEFAULT_LIMITS) -> dict[str, int]:
    """Every file in the package -> its size, after refusing: links that leave the package (anywhere, hub
    bookkeeping folders included), anything that is not a regular file or folder (a named pipe would block
    whoever opens it), names that are unsafe, pickle-capable or not UTF-8, and sizes over ``limits``. Files
    inside hub bookkeeping folders (``.cache/``, ``.git/``) are checked but not listed: they are not part of
    the package, so nothing that publishes or copies from this list ever touches them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PackageFileMissingError(f"adapter package folder {folder} does not exist or is not a folder: check the "
                                      f"path, or pull the adapter again")
    roots = link_roots(folder)
    sizes: dict[str, int] = {}
    total = 0
    entries = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False, onerror=_walk_error):
        here = Path(dirpath)
        rel_dir = here.relative_to(folder)
        bookkeeping = bool(rel_dir.parts) and rel_dir.parts[0] in _BOOKKEEPING_DIRS
        for name in [*dirnames, *filenames]:
            full = here / name
            rel = (rel_dir / name).as_posix()
            _utf8_name(rel)
            if rel.count("/") >= _MAX_DEPTH:
                raise UnsafePackageError(f"package entry {_cut(rel)!r} is nested {rel.count('/') + 1} folders deep: a "
                                         f"package holds a few files and a lora/ folder; remove that folder")
            entries += 1
            if entries > 64 * limits.max_files:  # a tree of thousands of entries is not an adapter package
                raise PackageTooLargeError(f"package holds more than {64 * limits.max_files} files and folders: an "
                                           f"adapter package holds a config, weights, a README and an optional "
                                           f"lora/ folder; remove the extra files and folders and publish again")
            info = _entry_stat(full, rel)
            if stat.S_ISLNK(info.st_mode):
                info = _check_link(full, rel, roots, name in dirnames)
            if name in dirnames:
                continue
            require_regular(info.st_mode, f"package entry {rel!r}")
            if bookkeeping:
                continue
            check_member_name(rel)
            weights = rel.endswith(".safetensors")
            if not weights and info.st_size > limits.max_other_file_bytes:
                raise PackageTooLargeError(f"package file {rel!r} is {info.st_size} bytes, over the "
                                           f"{limits.max_other_file_bytes}-byte limit for files other than weights "
                                           f"(configs, model card): remove or shorten it and publish again")
            if info.st_size > limits.max_file_bytes:
                raise PackageTooLargeError(f"package file {rel!r} is {info.st_size} bytes, over the "
                                           f"{limits.max_file_bytes}-byte limit: raise PackageLimits.max_file_bytes "
                                           f"if the adapter is genuine")
            total += info.st_size
            sizes[rel] = info.st_size
    if len(sizes) > limits.max_files:
        raise PackageTooLargeError(f"package holds {len(sizes)} files, over the limit of {limits.max_files}: an adapter "
                                   f"package holds a config, weights, a README and an optional lora/ folder")
    if total > limits.max_total_bytes:
        raise PackageTooLargeError(f"package is {total} bytes, over the {limits.max_total_bytes}-byte limit: raise "
                                   f"PackageLimits.max_total_bytes if the adapter is genuine")
    return sizes


def _walk_error(error: OSError) -> None:
    raise PackageCorruptError(f"a package folder cannot be listed ({error.strerror or error}: {error.filename}): "
                              f"check its permissions, or pull the package again")


def _read_json(folder: Path, rel: str, limits: PackageLimits) -> Any:
    what = rel
    raw = read_regular_file(member_path(folder, rel), max_bytes=limits.max_config_bytes, what=what)
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    except DuplicateKeyError as e:
        raise PackageCorruptError(f"{what} has the key {e.key!r} twice: readers disagree on which one counts (this "
                                  f"one keeps the last, others the first); fix the file or export the adapter "
                                  f"again") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, and ints past Python's digit limit
        raise PackageCorruptError(f"{what} is not valid JSON ({str(e)[:160]}): the file is corrupt or was edited by "
                                  f"hand; fix it or export the adapter again") from None
    except RecursionError:
        raise PackageCorruptError(f"{what} is nested too deeply to be a config: the file is corrupt or malicious; "
                                  f"export the adapter again") from None


def read_package_config(folder: str | os.PathLike[str], limits: PackageLimits = DEFAULT_LIMITS) -> AdapterConfig:
    """Read, migrate and validate ``anymal_adapter.json`` (size-limited; never touches the weights)."""
    return parse_config(_read_json(Path(folder), CONFIG_NAME, limits), CONFIG_NAME)


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
        theirs, ours = _differing(config.llm.fingerprint, host_fingerprint)
        message = (f"adapter {config.name!r} was trained against {config.llm.name} (fingerprint {theirs}), but the "
                   f"host LLM{host} has fingerprint {ours}: its embedding space differs")
        if not force:
            raise FingerprintMismatchError(
                message + f"; pull the adapter trained for {host_llm_name or 'the host LLM'}, start the host with "
                f"{config.llm.name}, or pass force=True to load it anyway (outputs may be garbage)")
        warnings.warn(message + "; loading anyway because force=True, outputs may be garbage", ForcedLoadWarning,
                      stacklevel=2)


def _differing(a: str, b: str, context: int = 8) -> tuple[str, str]:
    """Two fingerprints shown where they differ (a prefix cut short could print the same for both)."""
    start = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo = max(0, start - context)
    cut = lambda s: ("..." if lo else "") + repr(s[lo:start + context])[1:-1] + ("..." if len(s) > start + context else "")
    return cut(a), cut(b)


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
    wanted = {"llm_fingerprint": config.llm.fingerprint, "modality": config.modality, "format": WEIGHTS_FORMAT}
    wrong = [f"{k}={meta.get(k)!r} (config says {v!r})" for k, v in wanted.items() if meta.get(k) != v]
    # The config has been migrated to this schema; weights written under an older schema keep its number.
    readable = {str(v) for v in range(MIN_SCHEMA_VERSION, config.schema_version + 1)}
    if meta.get("schema_version") not in readable:
        wrong.insert(0, f"schema_version={meta.get('schema_version')!r} (config says {str(config.schema_version)!r})")
    if wrong:
        raise PackageCorruptError(
            f"{WEIGHTS_NAME} metadata does not match {CONFIG_NAME}: {'; '.join(wrong)}. The weights belong to another "
            f"adapter or were saved without anymal: export the package again with save_adapter_package")
    allowed = weight_prefixes(config.encoder.weights_included)
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
    if not isinstance(_read_json(folder, f"{LORA_DIR}/{LORA_CONFIG_NAME}", limits), dict):
        raise PackageCorruptError(f"{LORA_DIR}/{LORA_CONFIG_NAME} is not a JSON object: export the LoRA again with "
                                  f"peft's save_pretrained")
    read_safetensors_header(member_path(folder, f"{LORA_DIR}/{LORA_WEIGHTS_NAME}"),
                            max_header_bytes=limits.max_header_bytes, name=LORA_WEIGHTS_NAME)
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
    if WEIGHTS_NAME not in files and (folder / WEIGHTS_NAME).is_dir():
        raise UnsafePackageError(f"{WEIGHTS_NAME} in {folder} is a folder, not a regular file: the package is "
                                 f"malformed; export it again with save_adapter_package")
    if WEIGHTS_NAME not in files:
        raise PackageFileMissingError(f"{WEIGHTS_NAME} is missing from {folder}: the package is incomplete; pull it "
                                      f"again or export it with save_adapter_package")
    header = read_safetensors_header(member_path(folder, WEIGHTS_NAME), max_header_bytes=limits.max_header_bytes,
                                     name=WEIGHTS_NAME)
    check_weights_header(header, config, expected_tensors)
    lora_dir = _check_lora(folder, config, files, limits)
    return CheckedPackage(folder, config, header, lora_dir, files)


def tensor_specs(tensors: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: tensor}`` -> ``{name: (shape, dtype code)}``: what the host passes as ``expected_tensors``,
    computed from ``ModalityAdapter.from_config(config).weights_for_saving()`` (an untrained adapter)."""
    return {k: (tuple(v.shape), normalize_dtype(v.dtype)) for k, v in tensors.items()}
