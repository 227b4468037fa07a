"""Publishing never follows a link: a link inside the package (also in the bookkeeping folders the package scan
skips, ``.git/`` and ``.cache/``), or one swapped in after the package was checked, must not put the contents
of the file it points at on a hub. Both hubs publish through ``adapters_hub.hub.copy_package_files``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters_hub import FolderHub, HFHub, UnsafePackageError, load_adapter_package
from adapters_hub import folder_hub as folder_hub_module
from adapters_hub import hf_hub as hf_hub_module
from adapters_hub.hub import copy_package_file

SECRET = b"aws_secret_access_key = AKIA-THIS-MUST-NEVER-BE-PUBLISHED"


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "outside" / "credentials"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


@pytest.fixture
def hubs(tmp_path, fake_hub):
    """name -> (hub, a function returning every byte string the hub stores)."""
    folder = FolderHub(tmp_path / "folder-hub")

    def folder_bytes() -> list[bytes]:
        out = []
        for dirpath, _, names in os.walk(folder.root):
            for name in names:
                path = Path(dirpath) / name
                out.append(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
        return out

    def hf_bytes() -> list[bytes]:
        return [data for repo in fake_hub.repos.values() for commit in repo.commits.values()
                for data in commit.files.values()]

    hf = HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "hf-cache")
    return {"folder": (folder, folder_bytes), "hf": (hf, hf_bytes)}


def _published_secret(stored: list[bytes]) -> bool:
    return any(SECRET in data for data in stored)


@pytest.mark.parametrize("kind", ["folder", "hf"])
def test_links_in_bookkeeping_folders_never_publish_their_target(hubs, kind, package, secret):
    (package / ".git").mkdir()
    (package / ".git" / "config").symlink_to(secret)
    (package / ".cache").mkdir()
    (package / ".cache" / "x").symlink_to(secret)
    hub, stored = hubs[kind]
    try:
        hub.push(package, "lab/imu")
    except UnsafePackageError:
        pass  # refusing such a package outright (the stricter package scan) is as good as leaving the links out
    else:
        assert not [f for f in hub.info("lab/imu").files if f.startswith((".git/", ".cache/"))]
    assert not _published_secret(stored())


@pytest.mark.parametrize("kind", ["folder", "hf"])
def test_a_link_swapped_in_after_the_check_is_refused(hubs, kind, package, secret, monkeypatch):
    """The race the checked file list alone does not close: README.md passes the check, then becomes a link."""
    module = folder_hub_module if kind == "folder" else hf_hub_module
    real_check = module.check_package
    swapped = []

    def check_then_swap(folder, **kwargs):
        checked = real_check(folder, **kwargs)
        if not swapped:
            (Path(folder) / "README.md").unlink()
            (Path(folder) / "README.md").symlink_to(secret)
            swapped.append(folder)
        return checked
    monkeypatch.setattr(module, "check_package", check_then_swap)
    hub, stored = hubs[kind]
    with pytest.raises(UnsafePackageError, match="'README.md' .* link"):
        hub.push(package, "lab/imu")
    assert swapped and not _published_secret(stored())


def test_a_linked_parent_folder_is_refused(tmp_path, secret):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "lora").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(UnsafePackageError, match="'lora/credentials' .* link"):
        copy_package_file(package, "lora/credentials", tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    os.mkfifo(package / "README.md")  # opening it for reading would wait for a writer forever
    with pytest.raises(UnsafePackageError, match="not a regular file"):
        copy_package_file(package, "README.md", tmp_path / "copy")


def test_a_hugging_face_snapshot_can_be_republished(hubs, package, tmp_path):
    """A pulled snapshot's files are links into the cache's blobs/: the one kind of link a copy reads (from
    blobs/, itself without following links), so an adapter can be mirrored from the Hub to a folder hub."""
    hf, _ = hubs["hf"]
    folder, stored = hubs["folder"]
    hf.push(package, "lab/imu")
    snapshot = hf.pull("lab/imu")
    assert any(p.is_symlink() for p in snapshot.iterdir())
    folder.push(snapshot, "mirror/imu")
    assert load_adapter_package(folder.pull("mirror/imu"))[0] == load_adapter_package(package)[0]


def test_a_fake_cache_whose_blobs_folder_is_a_link_publishes_nothing(package, tmp_path):
    """A folder laid out like a Hugging Face cache snapshot, whose blobs/ is itself a link to another folder:
    "links into blobs/" would then be links to anywhere. The layout is trusted only when blobs/ is real."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_bytes(b"-----BEGIN PRIVATE KEY-----")
    repo = tmp_path / "dl" / "models--evil--imu"
    snapshot = repo / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (repo / "blobs").symlink_to(secret, target_is_directory=True)
    for f in package.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (snapshot / "notes.txt").symlink_to("../../blobs/id_rsa")
    hub = FolderHub(tmp_path / "hub")
    with pytest.raises(UnsafePackageError, match="outside the package"):
        hub.push(snapshot, "me/imu")
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in (tmp_path / "hub").rglob("*") if p.is_file())
