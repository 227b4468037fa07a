"""The folder hub: push / pull / list / info, revisions, content hashes, atomic publishing."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from adapters_hub import (
    AdapterPackageError, CONFIG_NAME, WEIGHTS_NAME, FolderHub, Hub, InvalidRefError, PackageCorruptError, RepoNotFoundError,
    UnsafePackageError, load_adapter_package, resolve, save_adapter_package,
)
from adapters_hub import atomic
from adapters_hub import hub as hub_module

from .conftest import make_config, make_tensors


@pytest.fixture
def hub(tmp_path) -> FolderHub:
    return FolderHub(tmp_path / "hub")


@pytest.fixture
def two_packages(tmp_path):
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    save_adapter_package(v1, make_config(), make_tensors(1))
    save_adapter_package(v2, make_config(), make_tensors(2))
    return v1, v2


def _visible(hub: FolderHub, repo: str) -> dict:
    """Everything a reader of the hub can see of ``repo``."""
    repo_dir = hub.root / repo
    return {"main": (repo_dir / "refs" / "main").read_text() if (repo_dir / "refs" / "main").exists() else None,
            "revisions": sorted(p.name for p in (repo_dir / "revisions").iterdir()
                                if atomic.TMP_MARKER not in p.name) if (repo_dir / "revisions").exists() else [],
            "list": hub.list()}


def test_is_a_hub(hub):
    assert isinstance(hub, Hub)


def test_push_pull_round_trip(hub, package, config, tensors):
    revision = hub.push(package, "lab/imu-small", "first version")
    assert len(revision) == 40
    folder = hub.pull("lab/imu-small")
    assert folder == hub.root / "lab" / "imu-small" / "revisions" / revision
    loaded_config, loaded = load_adapter_package(folder)
    assert loaded_config == config
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_revisions_and_pinning(hub, two_packages):
    v1, v2 = two_packages
    r1 = hub.push(v1, "lab/imu", "v1")
    r2 = hub.push(v2, "lab/imu", "v2")
    assert r1 != r2
    assert hub.revisions("lab/imu") == [r2, r1]
    assert hub.pull("lab/imu").name == r2
    assert hub.pull("lab/imu", r1).name == r1
    assert hub.pull("lab/imu", r1[:8]).name == r1  # unique prefix, like git
    assert hub.pull("lab/imu", "main").name == r2
    _, old = load_adapter_package(hub.pull("lab/imu", r1))
    assert torch.equal(old["encoder.conv.bias"], make_tensors(1)["encoder.conv.bias"])
    info = hub.info("lab/imu", r1)
    assert info.revision == r1 and info.commit_message == "v1" and info.revisions == [r2, r1]
    assert CONFIG_NAME in info.files and info.summary.modality == "imu"


def test_same_content_same_revision(hub, package):
    assert hub.push(package, "lab/a") == hub.push(package, "lab/a", "again")
    assert len(hub.revisions("lab/a")) == 1


def test_list_reads_configs_and_filters_by_modality(hub, tmp_path, package):
    save_adapter_package(tmp_path / "img", make_config(name="img", modality="image"), make_tensors())
    hub.push(package, "lab/imu")
    hub.push(tmp_path / "img", "lab/img")
    listed = dict(hub.list())
    assert set(listed) == {"lab/imu", "lab/img"}
    assert listed["lab/imu"].llm_hidden_size == 16 and listed["lab/imu"].metrics == {"activity_accuracy": 0.91}
    assert [repo for repo, _ in hub.list(modality="image")] == ["lab/img"]
    assert hub.list(modality="audio") == []


def test_resolve_file_refs(hub, two_packages):
    v1, v2 = two_packages
    r1 = hub.push(v1, "lab/imu")
    hub.push(v2, "lab/imu")
    assert resolve(f"file://{hub.root}/lab/imu").name != r1
    assert resolve(f"file://{hub.root}/lab/imu@{r1}").name == r1
    assert resolve(str(v1)) == v1


def test_crash_while_copying_leaves_nothing_visible(hub, two_packages, monkeypatch):
    v1, v2 = two_packages
    r1 = hub.push(v1, "lab/imu", "v1")
    before = _visible(hub, "lab/imu")
    real_copy = hub_module.copy_package_file
    copied = []

    def crash_midway(folder, rel, dst):
        if copied:
            raise OSError("simulated crash: disk unplugged")
        copied.append(dst)
        real_copy(folder, rel, dst)
    monkeypatch.setattr(hub_module, "copy_package_file", crash_midway)
    with pytest.raises(OSError, match="simulated crash"):
        hub.push(v2, "lab/imu", "v2")
    assert copied  # the crash did happen after a file was written
    assert _visible(hub, "lab/imu") == before
    assert hub.pull("lab/imu").name == r1
    assert not [p for p in (hub.root / "lab" / "imu" / "revisions").iterdir() if atomic.TMP_MARKER in p.name]


def test_crash_before_the_ref_moves_keeps_main(hub, two_packages, monkeypatch):
    v1, v2 = two_packages
    r1 = hub.push(v1, "lab/imu", "v1")
    real_write = atomic.write_text_atomic

    def crash_on_ref(path, text):
        if path.parent.name == "refs":
            raise OSError("simulated crash before publishing the ref")
        real_write(path, text)
    monkeypatch.setattr(atomic, "write_text_atomic", crash_on_ref)
    with pytest.raises(OSError):
        hub.push(v2, "lab/imu", "v2")
    assert hub.pull("lab/imu").name == r1
    assert [repo for repo, s in hub.list()] == ["lab/imu"] and hub.list()[0][1].revision == r1


def test_leftover_temporary_folder_from_a_killed_push_is_invisible(hub, package):
    r1 = hub.push(package, "lab/imu")
    stale = hub.root / "lab" / "imu" / "revisions" / f".{r1[:6]}ff{atomic.TMP_MARKER}dead"
    stale.mkdir()
    (stale / CONFIG_NAME).write_text("{half")
    assert hub.pull("lab/imu", r1[:8]).name == r1  # the stale folder is not a candidate
    assert [repo for repo, _ in hub.list()] == ["lab/imu"]
    assert hub.revisions("lab/imu") == [r1]


def test_tampered_revision_is_refused(hub, package):
    revision = hub.push(package, "lab/imu")
    weights = hub.root / "lab" / "imu" / "revisions" / revision / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PackageCorruptError, match="no longer matches its content hash"):
        hub.pull("lab/imu")


def test_invalid_package_is_never_published(hub, package):
    (package / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(UnsafePackageError):
        hub.push(package, "lab/imu")
    assert not (hub.root / "lab").exists()


def test_unknown_repo_and_revision(hub, package):
    hub.push(package, "lab/imu")
    with pytest.raises(RepoNotFoundError, match=r"no repo 'lab/other' in folder hub .*\(repos: lab/imu\)"):
        hub.pull("lab/other")
    with pytest.raises(RepoNotFoundError, match="has no revision 'v9'"):
        hub.pull("lab/imu", "v9")


@pytest.mark.parametrize("repo", ["../escape", "lab/../x", "lab", "/abs/x"])
def test_repo_names_cannot_escape_the_root(hub, package, repo):
    with pytest.raises(InvalidRefError, match="not a repo id"):
        hub.push(package, repo)


def test_broken_repo_is_listed_as_unreadable_with_its_reason(hub, package):
    revision = hub.push(package, "lab/imu")
    hub.push(package, "lab/ok")
    (hub.root / "lab" / "imu" / "revisions" / revision / CONFIG_NAME).write_text(json.dumps({"schema_version": 99}))
    listed = dict(hub.list())
    assert set(listed) == {"lab/imu", "lab/ok"}
    assert listed["lab/ok"].error is None and listed["lab/ok"].modality == "imu"
    assert listed["lab/imu"].revision == revision and "schema version 99" in listed["lab/imu"].error
    # Its modality is unknown, so a filtered listing still shows it rather than hiding the damage.
    assert [repo for repo, _ in hub.list(modality="image")] == ["lab/imu"]


def _not_json(repo_dir, revision):
    (repo_dir / "revisions" / revision / CONFIG_NAME).write_bytes(b"\x00{not json")


def _revision_folder_gone(repo_dir, revision):
    shutil.rmtree(repo_dir / "revisions" / revision)


def _config_is_a_folder(repo_dir, revision):  # unreadable even for root (chmod 000 is not)
    (repo_dir / "revisions" / revision / CONFIG_NAME).unlink()
    (repo_dir / "revisions" / revision / CONFIG_NAME).mkdir()


def _empty_ref(repo_dir, revision):
    (repo_dir / "refs" / "main").write_text("")


@pytest.mark.parametrize("damage, reason", [
    (_not_json, "is not valid JSON"),
    (_revision_folder_gone, "missing from revisions/"),
    (_config_is_a_folder, "Is a directory|is a folder"),  # the OS's words, or the package checks' own
    (_empty_ref, "has no revision 'main'"),
])
def test_one_damaged_repo_does_not_break_the_listing_or_info_of_the_others(hub, package, damage, reason):
    revision = hub.push(package, "lab/bad")
    hub.push(package, "lab/good")
    damage(hub.root / "lab" / "bad", revision)
    listed = dict(hub.list())
    assert listed["lab/good"].error is None
    assert re.search(reason, listed["lab/bad"].error)
    assert hub.info("lab/good").summary.name == "imu-small"
    # info on the damaged repo: an AdapterPackageError (one readable line in the CLI), never a bare OSError.
    with pytest.raises(AdapterPackageError) as caught:
        hub.info("lab/bad")
    assert "\n" not in str(caught.value)


def test_a_package_folder_is_not_a_push_target(package):
    from adapters_hub import hub_for

    with pytest.raises(InvalidRefError, match="is a package folder, not a hub"):
        hub_for(str(package))
    hub, repo, revision = hub_for(f"file://{package.parent}/hub/lab/imu@main")
    assert isinstance(hub, FolderHub) and repo == "lab/imu" and revision == "main"
