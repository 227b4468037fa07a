"""The Hugging Face Hub path, through the real huggingface_hub client (unpatched), pointed at a fake Hub that
the tests run on 127.0.0.1 (``endpoint=`` is passed explicitly: huggingface_hub reads HF_ENDPOINT once at
import, so setting the variable here would be too late)."""

from __future__ import annotations

import socket

import pytest
import torch

from adapters_hub import (
    CONFIG_NAME, HFHub, Hub, HubError, HubOfflineWarning, PackageTooLargeError, PackageLimits, RepoNotFoundError,
    UnsafePackageError, load_adapter_package, resolve, save_adapter_package,
)

from .conftest import make_config, make_tensors


@pytest.fixture
def hf(fake_hub, tmp_path) -> HFHub:
    return HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "hf-cache")


def _dead_endpoint() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_is_a_hub(hf):
    assert isinstance(hf, Hub)


def test_push_pull_round_trip(hf, fake_hub, package, config, tensors, host_facts):
    revision = hf.push(package, "lab/imu-small", "Add IMU adapter")
    assert len(revision) == 40
    assert ("POST", "/api/repos/create") in fake_hub.requests
    assert ("POST", "/api/models/lab/imu-small/commit/main") in fake_hub.requests
    folder = hf.pull("lab/imu-small")
    assert folder.name == revision and "models--lab--imu-small" in str(folder)  # the HF cache layout
    loaded_config, loaded = load_adapter_package(folder, **host_facts)  # links into blobs/ are allowed
    assert loaded_config == config
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_pinned_revisions_and_stale_files_removed(hf, tmp_path, package):
    r1 = hf.push(package, "lab/imu", "v1")
    (package / "extra-notes.txt").write_text("only in v1")
    r1b = hf.push(package, "lab/imu", "v1 + notes")
    (package / "extra-notes.txt").unlink()
    save_adapter_package(package, make_config(), make_tensors(7))
    r2 = hf.push(package, "lab/imu", "v2")
    assert len({r1, r1b, r2}) == 3
    assert not (hf.pull("lab/imu") / "extra-notes.txt").exists()  # deleted in the v2 commit
    assert (hf.pull("lab/imu", r1b) / "extra-notes.txt").exists()
    _, old = load_adapter_package(hf.pull("lab/imu", r1))
    _, new = load_adapter_package(hf.pull("lab/imu"))
    assert torch.equal(old["encoder.conv.bias"], make_tensors(0)["encoder.conv.bias"])
    assert torch.equal(new["encoder.conv.bias"], make_tensors(7)["encoder.conv.bias"])
    info = hf.info("lab/imu", r1)
    assert info.revision == r1 and info.commit_message == "v1" and CONFIG_NAME in info.files
    assert hf.info("lab/imu").revisions[:3] == [r2, r1b, r1]


def test_list_by_tag_and_modality(hf, fake_hub, tmp_path, package):
    save_adapter_package(tmp_path / "img", make_config(name="img", modality="image"), make_tensors())
    hf.push(package, "lab/imu")
    hf.push(tmp_path / "img", "lab/img")
    fake_hub.create("other/plain-model")  # no anymal-adapter tag: not listed
    listed = dict(hf.list())
    assert set(listed) == {"lab/imu", "lab/img"}
    assert listed["lab/imu"].llm_fingerprint == make_config().llm.fingerprint
    assert [repo for repo, _ in hf.list("image")] == ["lab/img"]
    assert hf.list("audio") == []


def test_the_listing_follows_the_hubs_pages(hf, fake_hub, tmp_path, package):
    for name in ("a", "b", "c"):
        hf.push(package, f"lab/{name}")
    fake_hub.page_size = 2
    fake_hub.requests.clear()
    assert [repo for repo, _ in hf.list()] == ["lab/a", "lab/b", "lab/c"]
    assert [path for method, path in fake_hub.requests if path == "/api/models"] == ["/api/models"] * 2


def test_resolve_hf_refs(hf, fake_hub, tmp_path, package):
    revision = hf.push(package, "lab/imu")
    kwargs = {"cache_dir": tmp_path / "hf-cache", "hf_endpoint": fake_hub.url, "token": False}
    assert resolve("lab/imu", **kwargs).name == revision
    assert resolve(f"hf://lab/imu@{revision}", **kwargs).name == revision


def test_offline_falls_back_to_the_cache_with_a_warning(hf, tmp_path, package):
    revision = hf.push(package, "lab/imu")
    hf.pull("lab/imu")
    offline = HFHub(endpoint=_dead_endpoint(), token=False, cache_dir=tmp_path / "hf-cache")
    with pytest.warns(HubOfflineWarning, match="cannot reach .*using the cached copy of lab/imu@main"):
        folder = offline.pull("lab/imu")
    assert folder.name == revision
    load_adapter_package(folder)
    with pytest.warns(HubOfflineWarning):
        assert offline.pull("lab/imu", revision).name == revision


def test_offline_without_a_cached_copy(tmp_path):
    offline = HFHub(endpoint=_dead_endpoint(), token=False, cache_dir=tmp_path / "empty-cache")
    with pytest.raises(HubError, match="is not in the cache .*connect to the network once"):
        offline.pull("lab/imu")


def test_push_while_offline(tmp_path, package):
    offline = HFHub(endpoint=_dead_endpoint(), token=False, cache_dir=tmp_path / "c")
    with pytest.raises(HubError, match="cannot reach the hub at .* while publishing .* to lab/imu"):
        offline.push(package, "lab/imu")


def test_unknown_repo_and_revision(hf, package):
    with pytest.raises(RepoNotFoundError, match="no repo 'lab/none'"):
        hf.pull("lab/none")
    hf.push(package, "lab/imu")
    with pytest.raises(RepoNotFoundError, match="has no revision 'v9'"):
        hf.pull("lab/imu", "v9")


def test_malicious_file_names_refused_before_any_download(hf, fake_hub, package):
    hf.push(package, "lab/imu")
    fake_hub.commit("lab/imu", "evil", {"../../outside.safetensors": b"x"})
    fake_hub.requests.clear()
    with pytest.raises(UnsafePackageError, match="escapes the package folder"):
        hf.pull("lab/imu")
    assert not [path for _, path in fake_hub.requests if "/resolve/" in path]


def test_pickle_on_the_hub_refused_before_any_download(hf, fake_hub, package):
    hf.push(package, "lab/imu")
    fake_hub.commit("lab/imu", "add pickle", {"pytorch_model.bin": b"\x80\x04."})
    fake_hub.requests.clear()
    with pytest.raises(UnsafePackageError, match="pytorch_model.bin"):
        hf.pull("lab/imu")
    assert not [path for _, path in fake_hub.requests if "/resolve/" in path]


def test_oversize_listing_refused_before_any_download(fake_hub, tmp_path, package):
    HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "c").push(package, "lab/imu")
    small = HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "c", limits=PackageLimits(max_file_bytes=100))
    fake_hub.requests.clear()
    with pytest.raises(PackageTooLargeError, match=r"lab/imu: \S+ is \d+ bytes, over the 100-byte limit"):
        small.pull("lab/imu")
    assert not [path for _, path in fake_hub.requests if "/resolve/" in path]


def test_invalid_package_is_never_published(hf, fake_hub, package):
    (package / "optimizer.pt").write_bytes(b"pickle")
    with pytest.raises(UnsafePackageError):
        hf.push(package, "lab/imu")
    assert fake_hub.requests == []


def test_hf_endpoint_environment_variable_is_honoured(hf, fake_hub, tmp_path, package):
    """What a user does: set HF_ENDPOINT before starting anymal; HFHub() with no endpoint then uses it."""
    import os
    import subprocess
    import sys

    revision = hf.push(package, "lab/imu")
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "hf-home"),
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_TOKEN", None)
    code = "from adapters_hub import resolve; print(resolve('lab/imu').name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == revision
