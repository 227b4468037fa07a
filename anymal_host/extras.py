"""Optional dependencies, grouped as the distribution's extras, and the one error that names the pip command.

A chat install stays lean (``pip install anymal``); each heavier job checks its extra before any work starts,
so a missing package costs a second, not an hour of training:

- ``train``: peft (LoRA), accelerate, matplotlib (loss curve)      -> ``anymal train``
- ``eval``: sacrebleu, rouge-score, pycocoevalcap, matplotlib     -> ``anymal eval``
- ``quantize``: bitsandbytes                                     -> ``--quantize 4bit|8bit``
- ``serve``: fastapi, uvicorn, prometheus-client                 -> ``anymal serve``
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

from .errors import MissingExtraError

__all__ = ["EXTRAS", "require_extra", "missing_modules", "quiet_bitsandbytes", "installed_version"]

#: extra -> {import name: distribution name}
EXTRAS: dict[str, dict[str, str]] = {
    "train": {"peft": "peft", "accelerate": "accelerate", "matplotlib": "matplotlib"},
    "eval": {"sacrebleu": "sacrebleu", "rouge_score": "rouge-score", "pycocoevalcap": "pycocoevalcap",
             "matplotlib": "matplotlib"},
    "quantize": {"bitsandbytes": "bitsandbytes"},
    "serve": {"fastapi": "fastapi", "uvicorn": "uvicorn", "prometheus_client": "prometheus-client"},
}


def missing_modules(extra: str, modules: tuple[str, ...] = ()) -> list[str]:
    """Distribution names of ``extra`` (or of its ``modules`` only) that are not installed."""
    wanted = EXTRAS[extra]
    names = modules or tuple(wanted)
    return [wanted.get(m, m) for m in names if find_spec(m) is None]


def require_extra(extra: str, purpose: str, modules: tuple[str, ...] = ()) -> None:
    """Raise :class:`~anymal_host.errors.MissingExtraError` naming ``pip install 'anymal[extra]'`` when
    ``purpose`` needs packages of ``extra`` (all of them, or just ``modules``) that are missing."""
    missing = missing_modules(extra, modules)
    if missing:
        raise MissingExtraError(f"{purpose} needs {', '.join(missing)}, which is not installed: "
                                f"pip install 'anymal[{extra}]'")


def quiet_bitsandbytes(quantization: str | None) -> None:
    """Hide bitsandbytes' CPU-kernel notice when nothing is quantized.

    peft and transformers' optimisation module import bitsandbytes whenever it is installed, and its CPU
    backend then logs, at import, that an optional kernel package for 4-bit inference is missing. That
    concerns 4-bit on a CPU only; an unquantized run would print it on every command."""
    if not quantization:
        logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def installed_version(distribution: str) -> str:
    """An installed distribution's version, read without importing it (``"missing"`` when not installed)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "missing"
