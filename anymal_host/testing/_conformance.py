"""The conformance kit: one contract suite for every modality, encoder, projector, data set and bundled adapter.

Each ``check_*`` function runs the thing it is given through the same calls the host makes and raises
:class:`ConformanceError` at the first broken rule. The message names the thing, the rule (a key of
:data:`RULES`) and how to fix it. The host's ``tests/test_conformance.py`` runs the kit over everything the
installed plugins register; a plugin's own tests call :func:`check_plugin` on the plugin module.

The checks run on the CPU, with small inputs, in a forked RNG: they leave the caller's random stream, and the
modules they are given, as they found them.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping, NoReturn, Sequence

import numpy as np
import torch
from torch import nn

from ..default_plugins import DEFAULT_PLUGINS
from ..errors import InvalidSignalError
from ..modality import DatasetSpec, Encoder, Modality
from ..plugins import Registry

__all__ = ["ConformanceError", "RULES", "registry_with", "check_modality", "check_encoder", "check_projector",
           "check_dataset", "check_bundled_adapter", "check_plugin"]

#: Every rule the kit checks, by the name a :class:`ConformanceError` carries, with what it requires.
RULES: dict[str, str] = {
    # modality
    "modality-type": "a Modality instance whose name is a short identifier",
    "accepts": "file_extensions and media_types are lower case (extensions with a dot) and accepts() takes each",
    "load-example": "load(example_input()) returns a non-empty, finite floating tensor [T, ...]",
    "unknown-options": "load and preprocess accept (and ignore) options they do not know",
    "preprocess": "preprocess returns a non-empty, finite floating tensor [T, ...], the same each time, with "
                  "signal_spec.channels among its dimensions",
    "collate": "collate of items of two lengths gives batch [B, T, ...] and a bool mask [B, T] True on real steps, "
               "with each item's values in place",
    "bad-input": "each bad input (None, empty, NaN, missing path, folder, undecodable bytes, and the plugin's own) "
                 "raises InvalidSignalError with a message",
    # encoder
    "encoder-build": "build_encoder(config) returns an anymal_host.Encoder; building twice under one seed gives "
                     "the same weights",
    "meta-build": "build_encoder works under torch.device('meta') with the same tensor names, shapes and dtypes "
                  "(or raises NotImplementedError / RuntimeError, and the host builds it for real)",
    "feature-dim": "feature_dim is a positive int and the width of the features",
    "encoder-output": "forward(batch, mask) returns (features [B, T', D], bool feature_mask [B, T']), finite, with "
                      "at least one real step per item",
    "padding-invariance": "an item gives the same outputs on its real steps alone and padded in a batch",
    "padded-zeros": "encoder features at steps the feature_mask marks as padding are exactly zero",
    "determinism": "the same input gives the same output twice in eval mode",
    # projector
    "projector-build": "factory(in_dim, out_dim, num_tokens, **options) returns a torch.nn.Module with trainable "
                       "parameters",
    "projector-output": "forward(features, mask) returns (tokens [B, N, out_dim], bool token_mask [B, N]), finite",
    "token-mode": "token_mode 'fixed' gives num_tokens real tokens for any length; 'per_step' one token per step "
                  "with the input's mask; without the attribute, one of the two",
    "gradients": "a loss on the tokens gives every trainable parameter a finite gradient, not all zero",
    # data set
    "dataset-name": "a DatasetSpec named 'modality:name' with modality equal to the part before ':'",
    "dataset-modality": "its modality is installed and matches the modality it is checked with",
    "dataset-build": "build(split) returns a non-empty sequence for every split",
    "dataset-item": "items are mappings with 'signal' (non-empty finite floating tensor) and 'caption' "
                    "(non-empty str)",
    "dataset-collate": "signals share trailing shape and dtype with the modality's preprocessed example and collate",
    "dataset-labels": "labels are distinct non-empty strings and an item's 'label' is one of them",
    "dataset-parse-label": "parse_label (or, without it, the label_matcher evaluation uses) reads each item's label "
                           "back from its caption",
    "dataset-questions": "questions are non-empty strings",
    # plugin and bundled adapters
    "plugin-registers": "the plugin's hooks register without errors",
    "adapter-package": "a bundled adapter passes every check the host runs before serving it (verify_package)",
}

# Tolerances of the padding-invariance comparisons: float reordering only, far below any real difference.
ATOL, RTOL = 1e-5, 1e-4
# An option no plugin knows: load and preprocess must ignore it (an adapter's preprocessing dict reaches both).
UNKNOWN_OPTION = "anymal_conformance_unknown_option"


class ConformanceError(AssertionError):
    """A plugin breaks a rule of the contract. ``subject`` names the thing (``"modality 'imu'"``), ``rule`` is
    a key of :data:`RULES`, and the message says what is wrong and how to fix it."""

    subject: str = ""
    rule: str = ""


def _fail(subject: str, rule: str, problem: str, fix: str) -> NoReturn:
    """Raise the :class:`ConformanceError` of ``subject`` breaking ``rule``."""
    assert rule in RULES, rule
    error = ConformanceError(f"{subject} breaks conformance rule {rule!r} ({RULES[rule]}): {problem}. Fix: {fix}")
    error.subject, error.rule = subject, rule
    raise error


def _run(subject: str, rule: str, what: str, fix: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; any exception (plugin code) becomes a :class:`ConformanceError` of ``rule``."""
    try:
        return fn(*args, **kwargs)
    except ConformanceError:
        raise
    except Exception as exc:
        _fail(subject, rule, f"{what} raised {type(exc).__name__}: {exc}", fix)


def _check_signal(subject: str, rule: str, what: str, value: Any, fix: str) -> torch.Tensor:
    """``value`` must be a non-empty, finite floating tensor ``[T, ...]`` with ``T >= 1``."""
    if not isinstance(value, torch.Tensor):
        _fail(subject, rule, f"{what} is a {type(value).__name__}, not a torch.Tensor", fix)
    if not value.is_floating_point():
        _fail(subject, rule, f"{what} has dtype {value.dtype}, not a floating dtype", fix)
    if value.dim() < 1 or value.shape[0] < 1 or value.numel() == 0:
        _fail(subject, rule, f"{what} has shape {list(value.shape)}: it needs at least one step on dim 0", fix)
    if not bool(torch.isfinite(value).all()):
        _fail(subject, rule, f"{what} holds NaN or inf", fix)
    return value


@contextlib.contextmanager
def _seeded(seed: int = 0) -> Iterator[None]:
    """A forked, seeded RNG: the checks are reproducible and leave the caller's random stream alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ----- the registry ---------------------------------------------------------------------------------------


def registry_with(*plugins: Any) -> Registry:
    """A private :class:`~anymal_host.Registry` holding the default plugins and ``plugins``.

    :param plugins: modules or objects carrying ``@hookimpl`` functions (a plugin's entry-point module).
    :returns: the registry; installed entry-point plugins are *not* loaded, so the result does not depend on
        what else is installed, and no environment variable is read or changed.
    :raises anymal_host.errors.PluginError: when two plugins are registered under one name.
    """
    registry = Registry()
    for module_name in DEFAULT_PLUGINS:
        registry.add_plugin(importlib.import_module(module_name), name=module_name, default=True)
    for plugin in plugins:
        registry.add_plugin(plugin)
    return registry


# ----- modalities -----------------------------------------------------------------------------------------


def _preprocessed_example(modality: Modality, subject: str) -> torch.Tensor:
    """``preprocess(load(example_input()))``, checked to be a finite floating tensor ``[T, ...]``."""
    fix = "make example_input() return a small valid source that load and preprocess accept"
    source = _run(subject, "load-example", "example_input()", fix, modality.example_input)
    loaded = _check_signal(subject, "load-example", "load(example_input())",
                           _run(subject, "load-example", "load(example_input())", fix, modality.load, source), fix)
    fix = "return the preprocessed signal as a floating tensor [T, ...] with no NaN or inf"
    return _check_signal(subject, "preprocess", "preprocess(load(example_input()))",
                         _run(subject, "preprocess", "preprocess(load(example_input()))", fix, modality.preprocess,
                              loaded), fix)


def _two_lengths(item: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A long and a short item for padding checks: ``item`` and its first half (or ``item`` twice over and
    ``item``, when it has a single step)."""
    if item.shape[0] >= 2:
        return item, item[: item.shape[0] // 2].clone()
    return torch.cat([item, item]), item


def _bad_inputs(modality: Modality, loaded: torch.Tensor, folder: Path) -> list[tuple[str, Any]]:
    """The generic bad inputs every modality refuses, as ``(description, source)``."""
    extension = modality.file_extensions[0] if modality.file_extensions else ".bin"
    (folder / f"a-folder{extension}").mkdir()
    garbage = random.Random(0).randbytes(256)
    (folder / f"garbage{extension}").write_bytes(garbage)
    trailing = tuple(loaded.shape[1:])
    return [
        ("None", None),
        (f"an empty array of shape {[0, *trailing]}", np.zeros((0, *trailing), dtype=np.float32)),
        (f"an array of NaN of shape {list(loaded.shape)}", np.full(tuple(loaded.shape), np.nan, dtype=np.float32)),
        ("a path that does not exist", str(folder / f"missing{extension}")),
        ("a folder", folder / f"a-folder{extension}"),
        ("256 random bytes", garbage),
        (f"a {extension} file of 256 random bytes", folder / f"garbage{extension}"),
    ]


def _describe(source: Any) -> str:
    """A one-line description of a source for messages."""
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return f"{type(source).__name__} of shape {list(source.shape)}"
    if isinstance(source, (bytes, bytearray)):
        return f"{len(source)} bytes"
    return " ".join(repr(source).split())[:60]


def _check_refused(modality: Modality, subject: str, description: str, source: Any) -> None:
    """``preprocess(load(source))`` must raise :class:`InvalidSignalError` with a message."""
    fix = ("validate the source in load (or preprocess) and raise anymal_host.InvalidSignalError saying what is "
           "wrong and how to fix it")
    try:
        modality.preprocess(modality.load(source))
    except InvalidSignalError as exc:
        if not str(exc).strip():
            _fail(subject, "bad-input", f"load({description}) raised InvalidSignalError with an empty message", fix)
        return
    except Exception as exc:
        _fail(subject, "bad-input", f"load({description}) raised {type(exc).__name__}: {exc}", fix)
    _fail(subject, "bad-input", f"{description} was accepted", fix)


def _check_accepts(modality: Modality, subject: str) -> None:
    fix = "list extensions lower case with the dot ('.csv') and media types lower case ('text/csv')"
    for extension in modality.file_extensions:
        if not (isinstance(extension, str) and extension.startswith(".") and extension == extension.lower()):
            _fail(subject, "accepts", f"file extension {extension!r} is not lower case with a leading dot", fix)
        if not modality.accepts(f"example{extension}"):
            _fail(subject, "accepts", f"accepts('example{extension}') is False for its own extension",
                  "leave accepts() to the base class, or make it take every extension in file_extensions")
    for media_type in modality.media_types:
        if not (isinstance(media_type, str) and media_type == media_type.lower()):
            _fail(subject, "accepts", f"media type {media_type!r} is not lower case", fix)
        if not modality.accepts(media_type=media_type):
            _fail(subject, "accepts", f"accepts(media_type={media_type!r}) is False for its own media type",
                  "leave accepts() to the base class, or make it take every type in media_types")


def _check_collate(modality: Modality, subject: str, long: torch.Tensor, short: torch.Tensor) -> None:
    fix = "return pad_sequences(items) from collate, or the same layout: batch [B, T, ...], bool mask [B, T]"
    batch, mask = _run(subject, "collate", "collate([item, shorter item])", fix, modality.collate, [long, short])
    length, short_length = long.shape[0], short.shape[0]
    if not isinstance(batch, torch.Tensor) or tuple(batch.shape) != (2, *long.shape):
        _fail(subject, "collate", f"the batch of items {list(long.shape)} and {list(short.shape)} has shape "
                                  f"{list(getattr(batch, 'shape', []))}, not {[2, *long.shape]}", fix)
    if batch.dtype != long.dtype:
        _fail(subject, "collate", f"the batch has dtype {batch.dtype}, the items {long.dtype}", fix)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (2, length):
        _fail(subject, "collate", f"the mask is {getattr(mask, 'dtype', type(mask).__name__)} "
                                  f"{list(getattr(mask, 'shape', []))}, not torch.bool {[2, length]}", fix)
    expected = torch.zeros(2, length, dtype=torch.bool)
    expected[0], expected[1, :short_length] = True, True
    if not torch.equal(mask, expected):
        _fail(subject, "collate", f"the mask is not True on exactly the {length} and {short_length} real steps", fix)
    if not (torch.equal(batch[0], long) and torch.equal(batch[1, :short_length], short)):
        _fail(subject, "collate", "the items' values are not in place at the start of their rows", fix)


def check_modality(modality: Modality, *, bad_inputs: Sequence[Any] = ()) -> None:
    """Run a modality's example input through the data path and feed it bad inputs.

    Checks, in order: the modality is a :class:`~anymal_host.Modality` with an identifier name; ``accepts``
    takes its own extensions and media types; ``load(example_input())`` and ``preprocess`` give finite floating
    tensors ``[T, ...]``, the same on a second run, with ``signal_spec.channels`` (when set) among the
    dimensions; both ignore an unknown option; ``collate`` of the example and its first half gives
    ``[2, T, ...]`` and the right mask; and every bad input raises
    :class:`~anymal_host.errors.InvalidSignalError` from ``load`` or ``preprocess``, with a message.

    :param modality: the modality instance, as its plugin registers it.
    :param bad_inputs: the plugin's own malformed sources, checked beside the generic ones (``None``, an empty
        array, an array of NaN, a missing path, a folder, 256 random bytes and a file of them).
    :raises ConformanceError: naming the modality and the first rule it breaks.
    """
    subject = f"modality {getattr(modality, 'name', modality)!r}"
    if not isinstance(modality, Modality):
        _fail(subject, "modality-type", f"it is a {type(modality).__name__}", "subclass anymal_host.Modality")
    if not (isinstance(modality.name, str) and modality.name.isidentifier()):
        _fail(subject, "modality-type", f"name {modality.name!r} is not an identifier", "use a name like 'imu'")
    _check_accepts(modality, subject)
    with _seeded():
        item = _preprocessed_example(modality, subject)
        fix = "accept **options in load and preprocess and ignore the ones you do not use"
        loaded = _run(subject, "unknown-options", f"load(example_input(), {UNKNOWN_OPTION}=1)", fix,
                      modality.load, modality.example_input(), **{UNKNOWN_OPTION: 1})
        again = _run(subject, "unknown-options", f"preprocess(signal, {UNKNOWN_OPTION}=1)", fix,
                     modality.preprocess, loaded, **{UNKNOWN_OPTION: 1})
    if not (isinstance(again, torch.Tensor) and again.shape == item.shape and torch.equal(again, item)):
        _fail(subject, "preprocess", "preprocess(load(example_input())) differs between two runs",
              "make load and preprocess deterministic (no unseeded randomness, no state kept between calls)")
    long, short = _two_lengths(item)
    channels = modality.signal_spec.channels
    if channels is not None and channels not in tuple(long.shape[1:]):
        _fail(subject, "preprocess", f"signal_spec.channels is {channels} but the preprocessed example has shape "
                                     f"{list(long.shape)}", "set signal_spec.channels to the channels preprocess gives")
    _check_collate(modality, subject, long, short)
    with tempfile.TemporaryDirectory(prefix="anymal-conformance-") as tmp:
        cases = _bad_inputs(modality, loaded, Path(tmp)) + [(f"bad_inputs[{i}] ({_describe(x)})", x)
                                                            for i, x in enumerate(bad_inputs)]
        for description, source in cases:
            _check_refused(modality, subject, description, source)


# ----- encoders -------------------------------------------------------------------------------------------


def _tensor_layout(module: nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {name: (tuple(t.shape), t.dtype) for name, t in module.state_dict().items()}


def _build_encoder(modality: Modality, config: Mapping[str, Any], subject: str) -> Encoder:
    fix = "make build_encoder return an anymal_host.Encoder for this config (its default_encoder by default)"
    encoder = _run(subject, "encoder-build", f"build_encoder({dict(config)!r})", fix, modality.build_encoder,
                   dict(config))
    if not isinstance(encoder, Encoder):
        _fail(subject, "encoder-build", f"build_encoder returned a {type(encoder).__name__}", fix)
    return encoder


def _check_meta_build(modality: Modality, config: Mapping[str, Any], subject: str, real: Encoder) -> None:
    fix = ("build the same modules whatever the default device (no tensors made on an explicit device, nothing "
           "computed from weights in __init__), or raise NotImplementedError")
    try:
        with torch.device("meta"):
            skeleton = modality.build_encoder(dict(config))
    except (NotImplementedError, RuntimeError):
        return  # the host catches these two and builds the encoder for real (anymal_host.loading._build)
    except Exception as exc:
        _fail(subject, "meta-build", f"build_encoder under torch.device('meta') raised {type(exc).__name__}: {exc}, "
                                     "which the host reports as AdapterBuildError for every package", fix)
    if _tensor_layout(skeleton) != _tensor_layout(real):
        _fail(subject, "meta-build", "the encoder built on the meta device has other tensor names, shapes or dtypes "
                                     "than the real one, so the host refuses every package's weights", fix)


def _forward(module: nn.Module, subject: str, rule: str, what: str, x: torch.Tensor, mask: torch.Tensor,
             width: int, fix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``module(x, mask)``, checked to be ``(values [B, N, width] finite floating, bool mask [B, N])``."""
    out = _run(subject, rule, what, fix, module, x, mask)
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        _fail(subject, rule, f"{what} returned {type(out).__name__}, not a pair of tensors", fix)
    values, out_mask = out
    batch = x.shape[0]
    if values.dim() != 3 or values.shape[0] != batch or values.shape[2] != width or not values.is_floating_point():
        _fail(subject, rule, f"{what} returned values {values.dtype} {list(values.shape)}, not floating "
                             f"[{batch}, steps, {width}]", fix)
    if out_mask.dtype != torch.bool or tuple(out_mask.shape) != tuple(values.shape[:2]):
        _fail(subject, rule, f"{what} returned a mask {out_mask.dtype} {list(out_mask.shape)}, not torch.bool "
                             f"{list(values.shape[:2])}", fix)
    if not bool(out_mask.any(dim=1).all()):
        _fail(subject, rule, f"{what} returned an item with no real step in its mask", fix)
    if not bool(torch.isfinite(values[out_mask]).all()):
        _fail(subject, rule, f"{what} returned NaN or inf on real steps", fix)
    return values, out_mask


def _check_deterministic(subject: str, first: tuple[torch.Tensor, torch.Tensor], again: Any) -> None:
    """A second forward pass over the same batch in eval mode gave ``again``: it must equal ``first``."""
    if not (isinstance(again, tuple) and len(again) == 2
            and all(isinstance(x, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)
                    for x, y in zip(again, first))):
        _fail(subject, "determinism", "two forward passes over one batch in eval mode differ",
              "keep randomness (dropout, noise) to train mode and keep no state between calls")


def _check_invariance(subject: str, what: str, alone: Sequence[tuple[torch.Tensor, torch.Tensor]],
                      batched: tuple[torch.Tensor, torch.Tensor], fix: str) -> None:
    """Row ``i`` of ``batched`` equals ``alone[i]`` on the real steps of both."""
    for i, (values, mask) in enumerate(alone):
        mine, mine_mask = values[0][mask[0]], batched[0][i][batched[1][i]]
        if mine.shape != mine_mask.shape:
            _fail(subject, "padding-invariance", f"item {i} has {mine.shape[0]} real {what} alone but "
                                                 f"{mine_mask.shape[0]} in a padded batch", fix)
        if not torch.allclose(mine, mine_mask, atol=ATOL, rtol=RTOL):
            diff = float((mine - mine_mask).abs().max())
            _fail(subject, "padding-invariance", f"item {i}'s real {what} differ alone and in a padded batch "
                                                 f"(largest difference {diff:.3g})", fix)


def check_encoder(modality: Modality, config: Mapping[str, Any] | None = None) -> None:
    """Build a modality's encoder and check what it makes of the preprocessed example input.

    Checks: ``build_encoder(config)`` returns an :class:`~anymal_host.Encoder`, with the same weights when built
    twice under one seed, and the same tensor layout when built under ``torch.device("meta")`` (as the host
    does first; raising ``NotImplementedError``/``RuntimeError`` there is allowed); ``feature_dim`` is a positive
    int; in eval mode ``forward`` returns ``(features [B, T', feature_dim], bool feature_mask [B, T'])``,
    finite on real steps; the example and its first half give the same features alone and padded in one
    batch; features at padded steps (``feature_mask`` False) are **exactly zero**, so that no projector, pooled
    or not, can read padding; and a second forward gives identical output.

    :param modality: the modality whose ``build_encoder`` is checked.
    :param config: the encoder config (the adapter's ``encoder`` section: ``name`` and options); default
        ``modality.default_encoder``.
    :raises ConformanceError: naming the modality's encoder and the first rule it breaks.
    """
    config = dict(modality.default_encoder if config is None else config)
    subject = f"encoder {config.get('name', '(default)')!r} of modality {getattr(modality, 'name', modality)!r}"
    with _seeded():
        long, short = _two_lengths(_preprocessed_example(modality, subject))
    with _seeded(), torch.no_grad():
        encoder = _build_encoder(modality, config, subject)
    with _seeded(), torch.no_grad():
        twin = _build_encoder(modality, config, subject)
    if not all(torch.equal(a, b) for a, b in zip(encoder.state_dict().values(), twin.state_dict().values())):
        _fail(subject, "encoder-build", "two builds under the same torch seed have different weights",
              "draw initial weights from torch's RNG only (no numpy/random/time), so a seed reproduces a build")
    _check_meta_build(modality, config, subject, encoder)
    width = getattr(encoder, "feature_dim", None)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        _fail(subject, "feature-dim", f"feature_dim is {width!r}", "set self.feature_dim = D (an int) in __init__")
    pretrained = getattr(encoder, "pretrained_weights", None)
    if pretrained not in (True, False, None):
        _fail(subject, "encoder-build", f"pretrained_weights is {pretrained!r}", "set it to True, False or None")
    fix = "return (features [B, T', feature_dim], feature_mask [B, T'] bool) with features of width feature_dim"
    encoder.eval()
    with _seeded(), torch.no_grad():
        batch, mask = modality.collate([long, short])
        batched = _forward(encoder, subject, "encoder-output", "forward(batch of 2)", batch, mask, width, fix)
        alone = [_forward(encoder, subject, "encoder-output", "forward(one item)", *modality.collate([x]), width, fix)
                 for x in (long, short)]
        again = encoder(batch, mask)
    _check_deterministic(subject, batched, again)
    _check_invariance(subject, "feature steps", alone, batched,
                      "zero padded steps before every layer that mixes steps, and mask padded keys in attention")
    features, feature_mask = batched
    if bool(features[~feature_mask].ne(0).any()):
        _fail(subject, "padded-zeros", "features at padded steps (feature_mask False) are not zero",
              "multiply the features by feature_mask.unsqueeze(-1) before returning them")


# ----- projectors -----------------------------------------------------------------------------------------


def _token_mode_problem(mode: Any, calls: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                        num_tokens: int) -> str | None:
    """Why the ``(input mask, tokens, token mask)`` of ``calls`` do not fit ``mode`` (None when they do)."""
    fixed = [f"{tokens.shape[1]} tokens with {int(out_mask.sum(1).min())} real for {mask.shape[1]} steps"
             for mask, tokens, out_mask in calls if tokens.shape[1] != num_tokens or not bool(out_mask.all())]
    per_step = [f"{tokens.shape[1]} tokens for {mask.shape[1]} steps" for mask, tokens, out_mask in calls
                if tokens.shape[1] != mask.shape[1] or not torch.equal(out_mask, mask)]
    if mode == "fixed":
        return f"token_mode is 'fixed' (num_tokens={num_tokens}) but it made {fixed[0]}" if fixed else None
    if mode == "per_step":
        return (f"token_mode is 'per_step' but it made {per_step[0]} (or a token mask other than the input's)"
                if per_step else None)
    if mode is not None:
        return f"token_mode is {mode!r}, not 'fixed' or 'per_step'"
    if fixed and per_step:
        return f"it has no token_mode and its token count follows neither rule: {fixed[0]}"
    return None


def check_projector(factory: Callable[..., nn.Module], *, in_dim: int = 8, out_dim: int = 16, num_tokens: int = 4,
                    **options: Any) -> None:
    """Build a projector the way the host does and check its tokens and gradients.

    The projector gets features of 6 and 4 real steps, alone and padded into one batch (padded steps hold
    zeros, as encoders guarantee). Checks: ``factory(in_dim, out_dim, num_tokens, **options)`` returns a
    :class:`torch.nn.Module` with trainable parameters; ``forward(features, mask)`` returns
    ``(tokens [B, N, out_dim], bool token_mask [B, N])``, finite on real tokens; ``token_mode`` ``"fixed"``
    means ``N == num_tokens`` real tokens for every length, ``"per_step"`` means ``N == T`` with the input's
    mask (without the attribute, one of the two must hold); each item's real tokens are the same alone and
    padded in the batch; eval mode is deterministic; and a loss on the real tokens gives every trainable
    parameter a finite gradient, not all of them zero.

    :param factory: the projector factory, as registered through ``register_projectors``.
    :param in_dim: feature width D given to the factory.
    :param out_dim: token width H given to the factory (the LLM's hidden size in real use).
    :param num_tokens: the token count given to the factory.
    :param options: the projector options (an adapter config's ``projector.options``).
    :raises ConformanceError: naming the projector and the first rule it breaks.
    """
    _check_projector(factory, f"projector {getattr(factory, '__qualname__', factory)!r}", in_dim=in_dim,
                     out_dim=out_dim, num_tokens=num_tokens, options=options)


def _check_projector(factory: Callable[..., nn.Module], subject: str, *, in_dim: int, out_dim: int,
                     num_tokens: int, options: Mapping[str, Any]) -> None:
    fix = "register a factory(in_dim, out_dim, num_tokens, **options) that returns an nn.Module with parameters"
    with _seeded():
        projector = _run(subject, "projector-build", f"factory({in_dim}, {out_dim}, {num_tokens})", fix, factory,
                         in_dim, out_dim, num_tokens, **options)
        if not isinstance(projector, nn.Module) or not any(p.requires_grad for p in projector.parameters()):
            _fail(subject, "projector-build", f"the factory returned {type(projector).__name__} without trainable "
                                              "parameters: stage 1 trains the projector", fix)
        features = torch.randn(2, 6, in_dim)
        mask = torch.ones(2, 6, dtype=torch.bool)
        mask[1, 4:] = False
        features[~mask] = 0
    fix = "return (tokens [B, N, out_dim], token_mask [B, N] bool) with no NaN or inf on real tokens"
    projector.eval()
    with _seeded(), torch.no_grad():
        batched = _forward(projector, subject, "projector-output", "forward(batch of 2)", features, mask, out_dim, fix)
        alone = [_forward(projector, subject, "projector-output", f"forward(item {i} alone)",
                          features[i:i + 1, :n], mask[i:i + 1, :n], out_dim, fix) for i, n in ((0, 6), (1, 4))]
        again = projector(features, mask)
    calls = [(mask, *batched)] + [(mask[i:i + 1, :n], *out) for (i, n), out in zip(((0, 6), (1, 4)), alone)]
    problem = _token_mode_problem(getattr(projector, "token_mode", None), calls, num_tokens)
    if problem:
        _fail(subject, "token-mode", problem, "set the class attribute token_mode to 'fixed' (always num_tokens "
                                              "tokens) or 'per_step' (one token per real step, the input's mask)")
    _check_deterministic(subject, batched, again)
    _check_invariance(subject, "tokens", alone, batched, "use the mask: ignore padded steps when pooling or attending")
    _check_gradients(projector, subject, features, mask)


def _check_gradients(projector: nn.Module, subject: str, features: torch.Tensor, mask: torch.Tensor) -> None:
    projector.train()
    projector.zero_grad(set_to_none=True)
    with _seeded(), torch.enable_grad():
        tokens, token_mask = projector(features, mask)
        # A random direction, so no normalisation layer can cancel the gradient of a plain sum.
        loss = (tokens * torch.randn_like(tokens))[token_mask].sum()
        _run(subject, "gradients", "backward() of a loss on the tokens", "keep the tokens' computation differentiable "
             "(no .detach(), no torch.no_grad() in forward)", loss.backward)
    trainable = [(name, p) for name, p in projector.named_parameters() if p.requires_grad]
    missing = [name for name, p in trainable if p.grad is None]
    fix = "use every trainable parameter in forward (or freeze it with requires_grad_(False))"
    if missing:
        _fail(subject, "gradients", f"no gradient reaches {', '.join(missing[:5])}", fix)
    if not all(bool(torch.isfinite(p.grad).all()) for _, p in trainable):
        _fail(subject, "gradients", "a gradient holds NaN or inf", "avoid divisions by zero and logs of zero")
    if not any(bool(p.grad.ne(0).any()) for _, p in trainable):
        _fail(subject, "gradients", "every gradient is zero", fix)
    projector.zero_grad(set_to_none=True)


# ----- data sets ------------------------------------------------------------------------------------------


def _spread(items: Sequence[Any], count: int) -> list[Any]:
    """Up to ``count`` items spread evenly over ``items`` (a data set is often ordered by class or person)."""
    step = max(1, math.ceil(len(items) / count))
    return [items[i] for i in range(0, len(items), step)][:count]


def _check_item(subject: str, where: str, item: Any, labels: Sequence[str], parse: Callable[[str], Any]) -> None:
    fix = "build items {'signal': preprocessed tensor, 'caption': str, 'label': str (optional)}"
    if not isinstance(item, Mapping):
        _fail(subject, "dataset-item", f"{where} is a {type(item).__name__}, not a mapping", fix)
    _check_signal(subject, "dataset-item", f"{where}['signal']", item.get("signal"), fix)
    caption = item.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        _fail(subject, "dataset-item", f"{where}['caption'] is {caption!r}, not a non-empty string", fix)
    if "label" not in item:
        return
    label = str(item["label"])  # as evaluation compares them
    if label not in labels:
        _fail(subject, "dataset-labels", f"{where} has label {label!r}, not one of {list(labels)}",
              "give items only labels from DatasetSpec.labels")
    parsed = _run(subject, "dataset-parse-label", f"parse_label({caption!r})", "make parse_label total on text",
                  parse, caption)
    if parsed != label:
        _fail(subject, "dataset-parse-label", f"{where} is labelled {label!r} but its caption {caption!r} parses as "
                                              f"{parsed!r}", "name the class in every caption, or fix parse_label")


def _labels_and_parser(spec: DatasetSpec, items: Sequence[Any]) -> tuple[list[str], Callable[[str], Any]]:
    """The classes and the parser evaluation uses for ``items``: the spec's, else the items' own labels read by
    ``label_matcher`` (see :func:`anymal_host.evaluation.evaluate`)."""
    from ..evaluation import label_matcher

    labels = list(spec.labels) or sorted({str(item["label"]) for item in items
                                          if isinstance(item, Mapping) and "label" in item})
    return labels, spec.parse_label or label_matcher(labels)


def _check_spec_fields(spec: DatasetSpec, subject: str, modality: Modality | None) -> None:
    if not isinstance(spec, DatasetSpec):
        _fail(subject, "dataset-name", f"it is a {type(spec).__name__}", "register an anymal_host.DatasetSpec")
    prefix, _, rest = str(spec.name).partition(":")
    if not rest or prefix != spec.modality:
        _fail(subject, "dataset-name", f"name {spec.name!r} does not read '{spec.modality}:<name>'",
              f"name it '{spec.modality}:{rest or spec.name}'")
    if modality is not None and modality.name != spec.modality:
        _fail(subject, "dataset-modality", f"it is of modality {spec.modality!r}, checked with {modality.name!r}",
              "check it with its own modality")
    labels = list(spec.labels)
    if any(not isinstance(x, str) or not x.strip() for x in labels) or len(set(labels)) != len(labels):
        _fail(subject, "dataset-labels", f"labels {labels!r} are not distinct non-empty strings",
              "list each class name once")
    if any(not isinstance(q, str) or not q.strip() for q in spec.questions):
        _fail(subject, "dataset-questions", f"questions {list(spec.questions)!r} hold a non-string or an empty one",
              "give questions as non-empty strings")


def check_dataset(spec: DatasetSpec, *, splits: Sequence[str] = ("train", "val", "test"), max_items: int = 64,
                  modality: Modality | None = None) -> None:
    """Build each split of a data set and check its items against the spec (and the modality).

    Checks: the name reads ``modality:name``; labels are distinct non-empty strings and questions non-empty
    strings; ``build(split)`` returns a non-empty sequence for each split; up to ``max_items`` items spread over
    each split are mappings with ``"signal"`` (a finite floating tensor ``[T, ...]``) and ``"caption"`` (a
    non-empty string); all signals share a trailing shape and dtype and ``collate`` together; an item's
    ``"label"`` is one of ``spec.labels`` and is read back from its caption by ``spec.parse_label`` (or by the
    evaluation's ``label_matcher(labels)`` when the spec has none), so accuracy can be measured. With
    ``modality``, the signals also match the trailing shape and dtype of its preprocessed example input.

    :param spec: the data set, as its plugin registers it.
    :param splits: the splits to build; training and evaluation use ``train``, ``val`` and ``test``.
    :param max_items: how many items of each split to check.
    :param modality: the modality of the data set (``check_plugin`` passes the registered one).
    :raises ConformanceError: naming the data set and the first rule it breaks.
    """
    subject = f"data set {getattr(spec, 'name', spec)!r}"
    _check_spec_fields(spec, subject, modality)
    reference = None
    if modality is not None:
        with _seeded():
            reference = _preprocessed_example(modality, f"modality {modality.name!r}")
    for split in splits:
        fix = f"make build({split!r}) return a non-empty list of items (or raise when its data is missing)"
        items = _run(subject, "dataset-build", f"build({split!r})", fix, spec.build, split)
        if not isinstance(items, Sequence) or len(items) == 0:
            _fail(subject, "dataset-build", f"build({split!r}) returned {type(items).__name__} of "
                                            f"{len(items) if isinstance(items, Sequence) else '?'} items", fix)
        sample = _spread(items, max_items)
        labels, parse = _labels_and_parser(spec, items)
        for i, item in enumerate(sample):
            _check_item(subject, f"build({split!r}) item {i}", item, labels, parse)
        signals = [item["signal"] for item in sample]
        reference = signals[0] if reference is None else reference
        for i, signal in enumerate(signals):
            if tuple(signal.shape[1:]) != tuple(reference.shape[1:]) or signal.dtype != reference.dtype:
                _fail(subject, "dataset-collate", f"build({split!r}) item {i} has signal {signal.dtype} "
                                                  f"{list(signal.shape)}, unlike {reference.dtype} "
                                                  f"{['T', *reference.shape[1:]]} (the modality's preprocessed "
                                                  f"example, or the first item)",
                      "store exactly what preprocess(load(source)) returns with default options")
        if modality is not None:
            _run(subject, "dataset-collate", f"collate of build({split!r}) items", "store preprocessed signals",
                 modality.collate, signals)


# ----- bundled adapters and whole plugins -----------------------------------------------------------------


def check_bundled_adapter(folder: str | Path, registry: Registry, *, name: str | None = None) -> None:
    """Run a bundled adapter package through every check the host runs before serving it.

    This is :func:`anymal_host.loading.verify_package` with no host LLM: file safety, the config's schema, the
    installed modality, the safetensors header against the adapter the config builds (on the meta device),
    the weights themselves, and the functional check on the modality's example input, with the token scale
    compared to the embedding scale the package recorded. The LLM's hidden size and fingerprint are not
    compared (the package was trained against the real LLM).

    :param folder: the package folder, as registered through ``register_adapters``.
    :param registry: a registry holding the adapter's modality and projector (see :func:`registry_with`).
    :param name: the registered name, for the message.
    :raises ConformanceError: with the host's own error message.
    """
    from adapters_hub import AdapterPackageError

    from ..loading import verify_package

    subject = f"bundled adapter {name or Path(folder).name!r}"
    try:
        with _seeded():
            verify_package(folder, registry)
    except AdapterPackageError as exc:
        _fail(subject, "adapter-package", f"{type(exc).__name__}: {exc}",
              "export the package again from the trained adapter (anymal train export) against the installed plugin")


@contextlib.contextmanager
def _attributed(plugin: str) -> Iterator[None]:
    """Name the plugin in a :class:`ConformanceError` raised inside."""
    try:
        yield
    except ConformanceError as exc:
        error = ConformanceError(f"plugin {plugin!r}: {exc}")
        error.subject, error.rule = f"plugin {plugin!r}: {exc.subject}", exc.rule
        raise error from None


def check_plugin(*plugins: Any, skip: Collection[str] = ()) -> None:
    """Register ``plugins`` beside the default plugins and run every check over what they registered.

    Each plugin must register without errors; then each modality goes through :func:`check_modality` and
    :func:`check_encoder` (its ``default_encoder``), each projector through :func:`check_projector`, each data
    set through :func:`check_dataset` (with its registered modality) and each bundled adapter through
    :func:`check_bundled_adapter`. With no plugins, the default plugins are checked.

    :param plugins: plugin modules or objects, as their ``anymal`` entry point names them.
    :param skip: names of registered things to leave out, such as a data set whose data is not installed
        (check it in a test that skips with the reason).
    :raises ConformanceError: naming the plugin, the thing and the first rule it breaks.
    """
    registry = registry_with(*plugins)
    infos = [info for info in registry.plugin_infos() if info.default != bool(plugins)]
    registered = {name for info in infos for names in info.registered.values() for name in names}
    unknown = sorted(set(skip) - registered)
    if unknown:
        raise ValueError(f"skip names {unknown}, which these plugins do not register (they register "
                         f"{sorted(registered)})")
    for info in infos:
        with _attributed(info.name):
            if info.errors:
                _fail(f"plugin {info.name!r}", "plugin-registers", "; ".join(info.errors),
                      "fix the hook implementation (`anymal plugins` shows the same errors)")
            for kind, names in sorted(info.registered.items()):
                for name in sorted(set(names) - set(skip)):
                    _check_registered(registry, kind, name)


def _check_registered(registry: Registry, kind: str, name: str) -> None:
    """Run the check of ``kind`` over the thing registered as ``name``."""
    if kind == "modality":
        check_modality(registry.modalities[name])
        check_encoder(registry.modalities[name])
    elif kind == "projector":
        _check_projector(registry.projectors[name], f"projector {name!r}", in_dim=8, out_dim=16, num_tokens=4,
                         options={})
    elif kind == "dataset":
        spec = registry.datasets[name]
        modality = registry.modalities.get(spec.modality)
        if modality is None:
            _fail(f"data set {name!r}", "dataset-modality", f"no installed plugin registers modality "
                                                            f"{spec.modality!r}", "install the modality's plugin")
        check_dataset(spec, modality=modality)
    elif kind == "adapter":
        check_bundled_adapter(registry.bundled_adapters[name], registry, name=name)
