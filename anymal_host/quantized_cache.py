"""A quantized copy of a local LLM checkpoint, so that 4-bit and 8-bit loads cost 4-bit and 8-bit memory.

Loading a checkpoint with a bitsandbytes ``quantization_config`` reads every full-precision tensor, converts it
to the compute dtype and only then quantizes it: for the default LLM the process peaks at the float32 model's
size (about 880 MiB above the imports, measured by ``bench/quantize.py``), the same as an unquantized load, and
most of it stays resident afterwards (freed, but not returned to the system). So the first quantized load of a
local checkpoint writes the quantized model with ``save_pretrained`` (bitsandbytes' own serialisation:
``model.safetensors`` with the packed weights and their quantization state, ``config.json`` with the
``quantization_config``) into ``$ANYMAL_HOME/models/quantized/``; later loads read that copy, whose tensors are
already 4-bit or 8-bit, and never hold a full-precision copy.

The copy is keyed by the source folder, its files' sizes and modification times, the quantization settings,
the device type, and the versions of bitsandbytes and transformers' major: any change writes a new copy, and
the copy it replaces is deleted. Hub
ids are not cached here (their snapshot in the Hugging Face cache can move with the revision): they load as
transformers loads them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from adapters_hub.atomic import fsync_tree, replace_dir, temp_sibling

from .extras import installed_version
from .paths import anymal_home, honour_umask

__all__ = ["quantized_copy_dir", "load_quantized", "CACHE_FORMAT"]

CACHE_FORMAT = 1
_MARKER = "anymal_quantized.json"
# Files of a checkpoint whose change means other weights or another architecture.
_SOURCE_FILES = ("config.json", "*.safetensors")


def _key(source: Path, settings: dict[str, Any]) -> dict[str, Any]:
    files = sorted(p for pattern in _SOURCE_FILES for p in source.glob(pattern))
    return {
        "format": CACHE_FORMAT, "source": str(source.resolve()),
        "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
        "settings": settings, "bitsandbytes": installed_version("bitsandbytes"),
        "transformers_major": installed_version("transformers").split(".", 1)[0],
    }


def quantized_copy_dir(source: str | Path, settings: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Where the quantized copy of ``source`` with ``settings`` lives, and the key its marker must hold."""
    key = _key(Path(source), settings)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return anymal_home() / "models" / "quantized" / f"{Path(source).name}-{settings['quantization']}-{digest}", key


def _usable(folder: Path, key: dict[str, Any]) -> bool:
    try:
        return json.loads((folder / _MARKER).read_text(encoding="utf-8")) == key
    except (OSError, ValueError):
        return False


def _remove_outdated(current: Path, key: dict[str, Any]) -> None:
    """Delete the earlier copies of the same checkpoint and settings (its files changed since): each is the
    size of the quantized model, and nothing reads them any more."""
    for folder in current.parent.glob(f"{current.name.rsplit('-', 1)[0]}-*"):
        if folder == current or not folder.is_dir():
            continue
        try:
            old = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a copy this module wrote completely: leave it
        if old.get("source") == key["source"] and old.get("settings") == key["settings"]:
            shutil.rmtree(folder, ignore_errors=True)


def load_quantized(source: str | Path, settings: dict[str, Any], load_full: Callable[[], Any],
                   load_copy: Callable[[Path], Any], progress: bool = True) -> Any:
    """The model of the local checkpoint ``source`` quantized as ``settings`` say: read from its quantized copy
    when there is a current one (``load_copy(folder)``); else loaded the usual way (``load_full()``), then
    saved as that copy for the next time. A copy that cannot be written (read-only or full disk) is skipped
    with one line; the model loaded is used either way."""
    folder, key = quantized_copy_dir(source, settings)
    if _usable(folder, key):
        return load_copy(folder)
    model = load_full()
    tmp = temp_sibling(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tqdm(total=1, desc=f"Saving the {settings['quantization']} LLM for later loads (once)", unit="copy",
                  disable=not progress) as bar:
            model.save_pretrained(tmp, safe_serialization=True)
            (tmp / _MARKER).write_text(json.dumps(key, indent=2), encoding="utf-8")
            honour_umask(tmp)
            fsync_tree(tmp)
            replace_dir(tmp, folder)
            bar.update()
        _remove_outdated(folder, key)
    except (OSError, RuntimeError, ValueError, NotImplementedError) as e:
        tqdm.write(f"anymal: could not keep a {settings['quantization']} copy of the LLM ({e}); the next "
                   f"quantized load converts it again", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model
