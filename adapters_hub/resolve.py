"""From a ref string to a hub and to a local package folder."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidRefError, PackageFileMissingError
from .folder_hub import FolderHub
from .hf_hub import HFHub
from .hub import Hub
from .refs import AdapterRef, parse_ref

__all__ = ["hub_for", "resolve"]


def hub_for(ref: str | AdapterRef, *, cache_dir: str | os.PathLike[str] | None = None,
            hf_endpoint: str | None = None, token: str | bool | None = None) -> tuple[Hub, str, str | None]:
    """``(hub, repo, revision)`` for a hub ref (what ``anymal push FOLDER REF`` publishes to). A local package
    folder is not a hub: pass ``file:///root/org/name`` to publish into a folder hub."""
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    if parsed.kind == "hf":
        return HFHub(endpoint=hf_endpoint, token=token, cache_dir=cache_dir), str(parsed.repo), parsed.revision
    if parsed.kind == "folder":
        return FolderHub(parsed.path), str(parsed.repo), parsed.revision  # type: ignore[arg-type]
    raise InvalidRefError(f"{ref} is a package folder, not a hub: publish to 'org/name' (Hugging Face Hub) "
                                  f"or 'file:///hub/root/org/name' (folder hub)")


def resolve(ref: str | AdapterRef, cache_dir: str | os.PathLike[str] | None = None, *,
            hf_endpoint: str | None = None, token: str | bool | None = None) -> Path:
    """A local folder holding the package ``ref`` names: the folder itself for a local package, the revision's
    folder for a folder hub, the HF cache snapshot for the Hugging Face Hub (downloaded into ``cache_dir``).
    Nothing is checked or loaded here: pass the folder to ``check_package`` / ``load_adapter_package``."""
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    if parsed.kind == "local":
        if not parsed.path or not parsed.path.is_dir():
            raise PackageFileMissingError(f"adapter folder {parsed.path} does not exist: check the path")
        return parsed.path
    hub, repo, revision = hub_for(parsed, cache_dir=cache_dir, hf_endpoint=hf_endpoint, token=token)
    return hub.pull(repo, revision)
