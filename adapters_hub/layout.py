"""File names of an adapter package and the limits that bound what reading one may cost."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONFIG_NAME", "WEIGHTS_NAME", "LORA_DIR", "LORA_CONFIG_NAME", "LORA_WEIGHTS_NAME", "README_NAME",
    "FORBIDDEN_SUFFIXES", "WEIGHTS_FORMAT", "PackageLimits", "DEFAULT_LIMITS", "PROJECTOR_PREFIX", "ENCODER_PREFIX",
    "weight_prefixes",
]

CONFIG_NAME = "anymal_adapter.json"
WEIGHTS_NAME = "adapter.safetensors"
LORA_DIR = "lora"
LORA_CONFIG_NAME = "adapter_config.json"  # peft's own names, so peft loads lora/ unchanged
LORA_WEIGHTS_NAME = "adapter_model.safetensors"
README_NAME = "README.md"
#: ``format`` in the safetensors metadata (the value transformers and peft write for torch tensors).
WEIGHTS_FORMAT = "pt"

#: Tensor-name prefixes in ``adapter.safetensors``: the projector's tensors always, the encoder's when the
#: package carries them (``encoder.weights_included``). The one place these names are spelled.
PROJECTOR_PREFIX = "projector."
ENCODER_PREFIX = "encoder."


def weight_prefixes(encoder_included: bool) -> tuple[str, ...]:
    """The tensor-name prefixes a package's weights may use."""
    return (PROJECTOR_PREFIX, ENCODER_PREFIX) if encoder_included else (PROJECTOR_PREFIX,)


#: Files that may hold pickles (arbitrary code on load). A package holding any is refused outright, even
#: though it would never be read: their presence means the package was not made by anymal.
FORBIDDEN_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")


@dataclass(frozen=True)
class PackageLimits:
    """Upper bounds checked before anything is parsed, so a hostile package cannot exhaust memory or disk."""

    # Largest ``anymal_adapter.json`` / ``lora/adapter_config.json`` accepted (bytes).
    max_config_bytes: int = 1 << 20
    # Largest safetensors JSON header accepted (bytes); the safetensors library itself caps it at 100 MB.
    max_header_bytes: int = 16 << 20
    # Largest single file accepted (bytes); adapters with a full vision encoder reach a few GB.
    max_file_bytes: int = 32 << 30
    # Largest file other than weights (``*.safetensors``) accepted: configs and the model card are text.
    max_other_file_bytes: int = 16 << 20
    # Largest package accepted, all files together (bytes).
    max_total_bytes: int = 64 << 30
    # Most files a package may hold (a package has 3-6; thousands means something else was published).
    max_files: int = 256
    # Largest magnitude a floating-point weight may have. Trained projectors stay far below 1e3; values past
    # this bound are finite but drown the LLM (every answer comes out empty), so they are refused as corrupt.
    max_abs_weight: float = 1e6


DEFAULT_LIMITS = PackageLimits()
