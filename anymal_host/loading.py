"""From an adapter package folder to a ready :class:`~anymal_host.adapter.ModalityAdapter`, off to the side.

Every adapter the host serves, whether bundled with a plugin, pulled from a hub or read from a local folder,
and every package ``anymal hub push`` publishes, goes through :func:`build_adapter`, in this order, so a bad
package never touches anything the host is serving:

1. ``check_package`` with the host's facts (installed modalities, the LLM's hidden size, fingerprint and name):
   file safety and sizes, every config field's type and range, compatibility, the safetensors header. No
   weight is read. It runs once per load.
2. A ``lora/`` folder is checked on its own (:func:`anymal_host.lora.check_lora`: a plain peft LoRA of
   linear layers, rank and header consistent; the host checks it against its LLM before loading it); a
   package that leaves its encoder weights out is refused unless the plugin's encoder ships pretrained weights.
3. The adapter is built on PyTorch's ``meta`` device (shapes only, no memory), and every tensor name, shape and
   dtype of the header is compared with it. A small package whose config asks for a huge model is refused
   here, before anything is allocated.
4. ``adapter.safetensors`` is read once (:func:`~adapters_hub.read_checked_weights`): the bytes read are the
   bytes checked; NaN, inf and absurd magnitudes are refused.
5. The real adapter is built through the modality's plugin and the weights are loaded strictly.
6. **Functional check**: the modality's ``example_input`` goes through the new adapter with its own
   preprocessing. The tokens must be finite, of the LLM's width, as many as the config says, and on the scale
   of the LLM's own token embeddings. A package that passes every static check but cannot work is refused
   here instead of answering garbage.

Only then does the host put the adapter in place (:meth:`AnymalHost.add_adapter`, one atomic swap).

**LoRA packages.** A stage-2 package carries a LoRA for the LLM. This module checks it and builds the
projector; :meth:`AnymalHost.load_adapter` then loads the LoRA into the LLM beside the others, chosen per
request (:mod:`anymal_host.lora`).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from adapters_hub.layout import ENCODER_PREFIX
from adapters_hub import (
    CONFIG_NAME, DEFAULT_LIMITS, WEIGHTS_NAME, AdapterConfig, AdapterPackageError, AdapterPackageWarning,
    PackageLimits, TensorMismatchError, check_package, check_weights_header, read_checked_weights, tensor_specs,
)

from .adapter import ModalityAdapter, measure_token_mode
from .plugins import Registry

if TYPE_CHECKING:
    from .llm import LLM

__all__ = ["HostFacts", "build_adapter", "build_adapter_from_folder", "verify_package", "measure_tokens",
           "check_example_tokens", "AdapterBuildError", "AdapterFunctionalCheckError", "LoraNotHotLoadableError",
           "MAX_TOKEN_SCALE", "MIN_TOKEN_SCALE"]

#: How much larger (root mean square) projected tokens may be than the LLM's own token embeddings. Trained
#: adapters stay within a few times the embedding scale (the bundled IMU adapter: about 5x); at a few hundred
#: times the tokens drown the prompt and answers turn to garbage.
MAX_TOKEN_SCALE = 100.0
#: How much smaller they may be: tokens a thousand times below the embeddings' scale carry nothing the LLM can
#: read (a zeroed projector, a subnormal one).
MIN_TOKEN_SCALE = 1e-3


class AdapterBuildError(AdapterPackageError):
    """The package passed its checks but its config does not build an adapter with the installed plugins
    (unknown projector type, encoder options the plugin rejects, feature width mismatch...)."""


class AdapterFunctionalCheckError(AdapterPackageError):
    """The adapter was built and its weights loaded, but the modality's example input does not come out as
    usable tokens (an exception, NaN/inf, the wrong count or width, or tokens far off the LLM's scale)."""


class LoraNotHotLoadableError(AdapterPackageError):
    """Deprecated, no longer raised: LoRA packages are hot-loaded (:mod:`anymal_host.lora`); a
    LoRA that does not fit raises :class:`~anymal_host.lora.LoraMismatchError`. Kept so that code catching it
    still imports; it will be removed in 0.3."""


@dataclass(frozen=True)
class HostFacts:
    """What the package pipeline needs to know of the host LLM; ``None`` skips the checks that need it (a
    package checked before publishing, with no LLM loaded)."""

    # The LLM's hidden size H (every token's width).
    hidden_size: int | None = None
    # The LLM's embedding-space fingerprint.
    fingerprint: str | None = None
    # Its name, for error messages.
    llm_name: str | None = None
    # Root mean square of the LLM's input token embeddings: the scale projected tokens are compared with.
    embedding_rms: float | None = None

    @classmethod
    def of(cls, llm: "LLM") -> "HostFacts":
        return cls(llm.hidden_size, llm.fingerprint, llm.name, llm.embedding_rms)


def build_adapter(folder: str | os.PathLike[str], registry: Registry, facts: HostFacts, *, force: bool = False,
                  limits: PackageLimits = DEFAULT_LIMITS) -> ModalityAdapter:
    """Check, build, load and try out the adapter package in ``folder`` (steps 1-6 above); nothing outside the
    returned adapter is changed.

    ``force=True`` lets a package trained against another checkpoint of the LLM (fingerprint mismatch, same
    hidden size) through with a :class:`~adapters_hub.ForcedLoadWarning`. Any problem raises an
    :class:`~adapters_hub.AdapterPackageError` subclass whose message says what is wrong and how to fix it.
    """
    folder = Path(folder)
    checked = check_package(folder, installed_modalities=set(registry.modalities), host_hidden_size=facts.hidden_size,
                            host_fingerprint=facts.fingerprint, host_llm_name=facts.llm_name, force=force,
                            limits=limits)
    config = checked.config
    if checked.lora_dir is not None:
        from .lora import check_lora

        check_lora(checked.lora_dir, limits=limits)  # against the LLM too when a host loads it
    skeleton = _build(config, registry, meta=True)
    _check_encoder_weights_source(config, skeleton)
    check_weights_header(checked.header, config, tensor_specs(skeleton.weights_for_saving()))
    del skeleton
    tensors = read_checked_weights(checked, limits=limits)
    adapter = _build(config, registry, meta=False)
    missing, unexpected = adapter.load_state_dict(tensors, strict=False)
    allowed_missing = () if config.encoder.weights_included else (ENCODER_PREFIX,)
    missing = [k for k in missing if not (allowed_missing and k.startswith(allowed_missing))]
    if missing or unexpected:
        raise TensorMismatchError(
            f"{WEIGHTS_NAME} of adapter {config.name!r} does not fill the adapter its config builds: "
            + "; ".join(p for p in (f"missing {', '.join(missing[:5])}" if missing else "",
                                    f"unexpected {', '.join(unexpected[:5])}" if unexpected else "") if p)
            + ": export the package again from the trained adapter with save_adapter_package")
    adapter.requires_grad_(False)
    adapter.eval()
    check_example_tokens(adapter, facts)
    return adapter


def build_adapter_from_folder(folder: str | os.PathLike[str], host: "object", force: bool = False, *,
                              limits: PackageLimits = DEFAULT_LIMITS) -> ModalityAdapter:
    """:func:`build_adapter` with the facts of a running :class:`~anymal_host.host.AnymalHost` (its registry and
    LLM); kept for callers of the earlier API."""
    return build_adapter(folder, host.registry, host.facts, force=force, limits=limits)  # type: ignore[attr-defined]


def verify_package(folder: str | os.PathLike[str], registry: Registry, facts: HostFacts | None = None, *,
                   limits: PackageLimits = DEFAULT_LIMITS) -> AdapterConfig:
    """Every check a host runs on a package, without a host: what ``anymal hub push`` runs before publishing,
    so a hub never holds a package every host would refuse. With no ``facts``, the checks against a host LLM
    (hidden size, fingerprint) are skipped and the token scale is compared with the embedding scale the
    package recorded for its LLM (``llm.embedding_rms``, when it has one); the package's own consistency, its
    build through the installed plugin, its weights and the functional check all run."""
    if facts is None:
        from adapters_hub import read_package_config

        config = read_package_config(folder, limits)
        facts = HostFacts(embedding_rms=config.llm.embedding_rms)
        if facts.embedding_rms is None:
            warnings.warn(f"adapter {config.name!r} does not record its LLM's embedding scale (llm.embedding_rms, "
                          f"written by anymal since 0.1): the token-scale check runs only when a host loads it",
                          AdapterPackageWarning, stacklevel=2)
    return build_adapter(folder, registry, facts, limits=limits).config


def _build(config: AdapterConfig, registry: Registry, *, meta: bool) -> ModalityAdapter:
    """The adapter a config describes, through its plugin; on the ``meta`` device it costs no memory (a plugin
    whose encoder cannot be built there is built for real: the config's sizes are already bounded)."""
    try:
        if meta:
            try:
                with torch.device("meta"):
                    return ModalityAdapter.from_config(config, registry)
            except (NotImplementedError, RuntimeError):
                pass
        return ModalityAdapter.from_config(config, registry)
    except Exception as e:  # plugin code: any failure means "this config does not build here"
        raise AdapterBuildError(
            f"adapter {config.name!r} passed its checks but cannot be built from its {CONFIG_NAME} with the "
            f"installed plugins ({type(e).__name__}: {e}): upgrade the {config.modality!r} plugin, or pull an "
            f"adapter made for the installed version") from e


def _check_encoder_weights_source(config: AdapterConfig, skeleton: ModalityAdapter) -> None:
    """A package may leave its encoder weights out only when the plugin ships pretrained ones; otherwise the
    encoder would run with random weights and every answer would be garbage."""
    if config.encoder.weights_included:
        return
    ships = getattr(skeleton.encoder, "pretrained_weights", None)
    if ships is False:
        raise AdapterBuildError(
            f"adapter {config.name!r} says its encoder weights are not included (encoder.weights_included is "
            f"false), but the {config.modality!r} plugin's encoder {config.encoder.name!r} ships no pretrained "
            f"weights: the encoder would run untrained. Export the package with the encoder weights "
            f"(encoder.weights_included true)")
    if ships is None:
        warnings.warn(
            f"adapter {config.name!r} leaves its encoder weights to the {config.modality!r} plugin, whose encoder "
            f"{config.encoder.name!r} does not say whether it ships pretrained weights (Encoder.pretrained_weights): "
            f"if it does not, answers will be garbage", AdapterPackageWarning, stacklevel=3)


def measure_tokens(adapter: ModalityAdapter) -> torch.Tensor:
    """The ``[N, H]`` tokens the adapter makes of its modality's example input, with its own preprocessing."""
    with torch.inference_mode():
        return adapter.encode([adapter.modality.example_input()])[0]


def _tokens_of_a_different_input(adapter: ModalityAdapter) -> torch.Tensor | None:
    """Tokens of the example input with noise of its own scale added to the loaded signal, before the package's
    preprocessing (a fixed seed), or None when the signal is not floating point. An adapter whose weights and
    preprocessing carry the signal gives different tokens; a zeroed encoder, a constant projector or a
    preprocessing that wipes the signal (``scale: 0``) gives the same ones for every input."""
    options = adapter.config.preprocessing
    modality = adapter.modality
    with torch.inference_mode():
        signal = modality.load(modality.example_input(), **options)
        if not isinstance(signal, torch.Tensor) or not signal.is_floating_point() or not signal.numel():
            return None
        scale = float(signal.float().std()) if signal.numel() > 1 else 1.0
        noise = torch.randn(signal.shape, generator=torch.Generator().manual_seed(0)) * (scale or 1.0)
        noisy = modality.preprocess(signal + noise.to(signal.dtype), **options)
        return adapter.encode_preprocessed([noisy])[0]


def check_example_tokens(adapter: ModalityAdapter, facts: HostFacts) -> None:
    """Step 6: run the modality's example input (and a noisy copy of it) through ``adapter`` and require usable
    tokens; see the module docstring."""
    config = adapter.config
    what = f"adapter {config.name!r}"
    try:
        tokens = measure_tokens(adapter)
        other = _tokens_of_a_different_input(adapter)
    except Exception as e:  # plugin code (preprocessing options of the wrong type or range, shapes...)
        raise AdapterFunctionalCheckError(
            f"{what} fails on the {config.modality!r} plugin's example input ({type(e).__name__}: {e}): its "
            f"preprocessing {config.preprocessing} or its weights do not work with the installed plugin; fix the "
            f"'preprocessing' of {CONFIG_NAME}, or export the adapter again") from e
    width = config.projector.out_dim
    if tokens.ndim != 2 or tokens.shape[1] != width or tokens.shape[0] < 1:
        raise AdapterFunctionalCheckError(f"{what} turns the example input into a tensor of shape "
                                          f"{list(tokens.shape)}, not [tokens, {width}]: the plugin or projector is "
                                          f"broken; upgrade the plugin or export the adapter again")
    _check_token_count(adapter, tokens.shape[0])
    if not bool(torch.isfinite(tokens).all()):
        raise AdapterFunctionalCheckError(f"{what} turns the example input into NaN or inf tokens: its weights are "
                                          f"broken; publish an earlier checkpoint")
    rms = float(tokens.float().pow(2).mean().sqrt())
    if facts.embedding_rms is not None and facts.embedding_rms > 0:
        ratio = rms / facts.embedding_rms
        if not math.isfinite(ratio) or not MIN_TOKEN_SCALE <= ratio <= MAX_TOKEN_SCALE:
            raise AdapterFunctionalCheckError(
                f"{what} makes tokens of scale {rms:.3g} (root mean square) from the example input, {ratio:.3g}x the "
                f"scale of the LLM's own token embeddings ({facts.embedding_rms:.3g}); a usable adapter stays between "
                f"{MIN_TOKEN_SCALE:g}x and {MAX_TOKEN_SCALE:g}x (larger tokens drown the prompt, smaller ones carry "
                f"nothing). The weights are corrupt or were trained for another LLM; publish an earlier checkpoint")
    if other is not None and other.shape == tokens.shape:
        spread = float((other.float() - tokens.float()).abs().max())
        if spread <= 1e-6 * max(rms, 1e-12):
            raise AdapterFunctionalCheckError(
                f"{what} makes the same tokens of two different inputs (the example and a noisy copy of it): its "
                f"weights carry no signal (a zeroed encoder or a constant projector), so every answer would ignore "
                f"the attachment. Publish a trained checkpoint")


def _check_token_count(adapter: ModalityAdapter, count: int) -> None:
    """The config's token facts must be what the projector does: the mode measured on the projector, and for
    a recorded mode the count it makes of the example input. A package that records no mode (written before
    ``token_mode`` existed) loads as before, with a warning to export it again."""
    config = adapter.config
    what = f"adapter {config.name!r}"
    behaves = measure_token_mode(adapter.projector, config.projector.in_dim)
    if config.token_mode is None:
        record = (f'add "token_mode": "{behaves}", "num_tokens": {count} to its {CONFIG_NAME}' if behaves else
                  f"record its token_mode ('fixed' or 'per_step') in its {CONFIG_NAME}")
        warnings.warn(f"{what} does not record token_mode (written before anymal recorded it, or by hand): its "
                      f"{config.projector.type!r} projector measures as {behaves or 'neither fixed nor per-step'}, "
                      f"making {count} tokens of the example input. To keep it loadable, {record} (see "
                      f"docs/migration.md); packages without it will be refused in a later release",
                      AdapterPackageWarning, stacklevel=4)
        return
    if behaves is not None and behaves != config.token_mode:
        raise AdapterFunctionalCheckError(
            f"{what} says token_mode {config.token_mode!r} but its {config.projector.type!r} projector is "
            f"{behaves!r}: set token_mode to {behaves!r} in {CONFIG_NAME} (or export the adapter again)")
    if count != config.num_tokens:
        mode = "fixed" if config.token_mode == "fixed" else "per_step, counted on the example input"
        raise AdapterFunctionalCheckError(
            f"{what} says it makes {config.num_tokens} tokens ({mode}) but its projector makes {count} of the "
            f"example input: set num_tokens to {count} in {CONFIG_NAME}"
            + ("" if config.token_mode == "per_step" else ", or token_mode to per_step if the count follows the "
               "input's length"))
