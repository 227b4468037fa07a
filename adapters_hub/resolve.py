"""From a ref string to a hub and to a local package folder."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import InvalidRefError, PackageFileMissingError
from .folder_hub import FolderHub
from .hf_hub import HFHub
from .hub import Hub
from .refs import AdapterRef, is_bare_repo_id, parse_destination, parse_ref

__all__ = ["hub_for", "hub_from_spec", "resolve"]

_SPECS = "'hf', an http(s):// Hub endpoint, file:///root or a folder path"


def hub_from_spec(spec: str | None, *, hf_endpoint: str | None = None, token: str | bool | None = None,
                  cache_dir: str | os.PathLike[str] | None = None, create: bool = False) -> Hub:
    """The hub ``--hub`` / ``$ANYMAL_HUB`` names: ``hf`` or nothing (the Hugging Face Hub at ``hf_endpoint``,
    i.e. $HF_ENDPOINT), an ``http(s)://`` endpoint speaking the Hub API, or a folder hub as ``file:///root`` or
    a plain folder path. A folder hub must exist unless ``create`` (publishing makes it)."""
    text = (spec or "hf").strip()
    if text in ("hf", "hf://", "huggingface"):
        return HFHub(endpoint=hf_endpoint, token=token, cache_dir=cache_dir)
    if text.startswith(("http://", "https://")):
        return HFHub(endpoint=text.rstrip("/"), token=token, cache_dir=cache_dir)
    if text.startswith("file://"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidRefError(f"--hub {spec!r}: a folder hub needs an absolute path, file:///abs/root")
        root = Path(unquote(parts.path))
    elif "://" in text:
        raise InvalidRefError(f"--hub {spec!r}: use {_SPECS}")
    else:
        root = Path(text).expanduser()
    if not create and not root.is_dir():
        raise InvalidRefError(f"--hub {spec!r}: no such folder; pass a folder hub's root (or 'hf' for Hugging Face)")
    return FolderHub(root)


def hub_for(ref: str | AdapterRef, *, cache_dir: str | os.PathLike[str] | None = None,
            hf_endpoint: str | None = None, token: str | bool | None = None, hub: Hub | None = None,
            destination: bool = False) -> tuple[Hub, str, str | None]:
    """``(hub, repo, revision)`` for a hub ref. ``hub`` is the hub a bare ``org/name`` names (default: the
    Hugging Face Hub); a ref that names its own hub (``hf://``, ``file://``, a path) keeps it. ``destination``:
    ``ref`` is where ``anymal hub push FOLDER REF`` publishes (:func:`~adapters_hub.refs.parse_destination`: a
    path names a folder-hub repo, existing or not). A local package folder is not a hub."""
    if hub is not None and is_bare_repo_id(ref):  # type: ignore[arg-type]
        parsed = parse_ref(f"hf://{str(ref).strip()}")
        return hub, str(parsed.repo), parsed.revision
    if isinstance(ref, AdapterRef):
        parsed = ref
    else:
        parsed = parse_destination(ref) if destination else parse_ref(ref)
    if parsed.kind == "hf":
        return HFHub(endpoint=hf_endpoint, token=token, cache_dir=cache_dir), str(parsed.repo), parsed.revision
    if parsed.kind == "folder":
        return FolderHub(parsed.path), str(parsed.repo), parsed.revision  # type: ignore[arg-type]
    raise InvalidRefError(f"{ref} is a package folder, not a hub: publish to 'org/name' (Hugging Face Hub) "
                          f"or 'file:///hub/root/org/name' (folder hub)")


def resolve(ref: str | AdapterRef, cache_dir: str | os.PathLike[str] | None = None, *,
            hf_endpoint: str | None = None, token: str | bool | None = None, hub: Hub | None = None) -> Path:
    """A local folder holding the package ``ref`` names: the folder itself for a local package, the revision's
    folder for a folder hub, the HF cache snapshot for the Hugging Face Hub (downloaded into ``cache_dir``).
    ``hub``: the hub a bare ``org/name`` names (see :func:`hub_for`). Nothing is checked or loaded here: pass
    the folder to ``check_package`` / ``load_adapter_package``."""
    if hub is not None and is_bare_repo_id(ref):  # type: ignore[arg-type]
        _, repo, revision = hub_for(ref, hub=hub)
        return hub.pull(repo, revision)
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    if parsed.kind == "local":
        if not parsed.path or not parsed.path.is_dir():
            raise PackageFileMissingError(f"adapter folder {parsed.path} does not exist: check the path")
        return parsed.path
    found, repo, revision = hub_for(parsed, cache_dir=cache_dir, hf_endpoint=hf_endpoint, token=token)
    return found.pull(repo, revision)
