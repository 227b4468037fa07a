"""From an adapter package folder to a ready :class:`~anymal_host.adapter.ModalityAdapter`, off to the side.

Every adapter the host serves, whether bundled with a plugin, pulled from a hub or read from a local folder,
is built here, in this order, so a bad package never touches anything the host is serving:

1. ``check_package`` with the host's facts (installed modalities, the LLM's hidden size, fingerprint and name):
   file safety and sizes, config schema, compatibility, the safetensors header. No weight is read.
2. A ``lora/`` folder is refused (see :class:`LoraNotHotLoadableError`).
3. ``ModalityAdapter.from_config`` builds an untrained adapter through the modality's plugin; it is not yet
   reachable from the host.
4. ``load_adapter_package`` reads ``adapter.safetensors`` after checking every tensor name, shape and dtype
   against the untrained adapter's ``weights_for_saving()`` (and refusing NaN / inf), then the weights are
   loaded strictly: every expected tensor present, nothing else (``encoder.*`` may only be absent when the
   config says the plugin supplies the encoder weights).

Only then does the host put the adapter in place (:meth:`AnymalHost.add_adapter`, one atomic swap).

**LoRA packages are not hot-loaded (yet).** A stage-2 package carries a LoRA for the LLM. Unlike a projector,
a LoRA lives *inside* the one shared LLM: peft's ``load_adapter`` / ``set_adapter`` change modules every
request in flight is running through, so "requests finish on the adapter they started with" cannot hold, and
two LoRAs cannot serve side by side without per-request adapter routing. Such packages are refused with a
:class:`LoraNotHotLoadableError` before anything is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from adapters_hub import (
    CONFIG_NAME, DEFAULT_LIMITS, LORA_DIR, WEIGHTS_NAME, AdapterPackageError, PackageCorruptError, PackageLimits,
    TensorMismatchError, check_package, load_adapter_package, tensor_specs,
)

from .adapter import ModalityAdapter

if TYPE_CHECKING:
    from .host import AnymalHost

__all__ = ["build_adapter_from_folder", "AdapterBuildError", "LoraNotHotLoadableError"]


class AdapterBuildError(AdapterPackageError):
    """The package passed its checks but its config does not build an adapter with the installed plugins
    (unknown projector type, encoder options the plugin rejects, feature width mismatch...)."""


class LoraNotHotLoadableError(AdapterPackageError):
    """The package carries a LoRA for the LLM (``lora/``), which cannot be swapped in atomically."""


def build_adapter_from_folder(folder: str | os.PathLike[str], host: "AnymalHost", force: bool = False, *,
                              limits: PackageLimits = DEFAULT_LIMITS) -> ModalityAdapter:
    """Check, build and load the adapter package in ``folder`` for ``host``; the host itself is not changed.

    ``force=True`` lets a package trained against another checkpoint of the LLM (fingerprint mismatch, same
    hidden size) through with a :class:`~adapters_hub.ForcedLoadWarning`. A config written by a newer anymal
    (unknown keys) loads with a :class:`~adapters_hub.ConfigFromNewerVersionWarning`. Any problem raises an
    :class:`~adapters_hub.AdapterPackageError` subclass whose message says what is wrong and how to fix it.
    """
    folder = Path(folder)
    llm = host.llm
    facts = {"installed_modalities": set(host.registry.modalities), "host_hidden_size": llm.hidden_size,
             "host_llm_name": llm.name, "limits": limits}
    # (a) every check that needs no model code, before anything is built (warnings, if forced, are emitted here)
    checked = check_package(folder, host_fingerprint=llm.fingerprint, force=force, **facts)
    config = checked.config
    # (b) LoRA: refused before anything is built
    if checked.lora_dir is not None or config.lora is not None:
        raise LoraNotHotLoadableError(
            f"adapter {config.name!r} carries a LoRA for the LLM ({LORA_DIR}/): hot-loading LoRA packages into a "
            f"running host is not supported yet (a LoRA changes the shared LLM under requests in flight). Use a "
            f"stage-1 (projector-only) package of this adapter (`anymal train align`), or merge the LoRA into "
            f"the LLM and start the host with the merged LLM")
    # (c) build off to the side: nothing the host serves is touched
    try:
        adapter = ModalityAdapter.from_config(config, host.registry)
    except Exception as e:  # plugin code: any failure means "this config does not build here"
        raise AdapterBuildError(
            f"adapter {config.name!r} passed its checks but cannot be built from its {CONFIG_NAME} with the "
            f"installed plugins ({type(e).__name__}: {e}): upgrade the {config.modality!r} plugin, or pull an "
            f"adapter made for the installed version") from e
    expected = tensor_specs(adapter.weights_for_saving())
    # (d) read the weights (re-checked against the untrained adapter's names, shapes and dtypes, NaN/inf refused).
    # The fingerprint was checked (and, if forced, warned about) in (a); skip it here so a forced load warns once.
    loaded_config, tensors = load_adapter_package(folder, host_fingerprint=None if force else llm.fingerprint,
                                                  expected_tensors=expected, force=force, **facts)
    if loaded_config != config:
        raise PackageCorruptError(f"{CONFIG_NAME} in {folder} changed while the adapter was loading: pull the "
                                  f"package again (and do not edit a package a host is loading)")
    missing, unexpected = adapter.load_state_dict(tensors, strict=False)
    allowed_missing = () if config.encoder.weights_included else ("encoder.",)
    missing = [k for k in missing if not (allowed_missing and k.startswith(allowed_missing))]
    if missing or unexpected:
        raise TensorMismatchError(
            f"{WEIGHTS_NAME} of adapter {config.name!r} does not fill the adapter its config builds: "
            + "; ".join(p for p in (f"missing {', '.join(missing[:5])}" if missing else "",
                                    f"unexpected {', '.join(unexpected[:5])}" if unexpected else "") if p)
            + ": export the package again from the trained adapter with save_adapter_package")
    adapter.requires_grad_(False)
    return adapter.eval()
