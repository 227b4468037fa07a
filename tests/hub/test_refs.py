"""Parsing refs: Hugging Face ids, hf://, file:// folder hubs, plain package paths; and where `anymal hub push`
publishes (a path there is a folder-hub repo, existing or not)."""

from __future__ import annotations

import pytest

from adapters_hub import AdapterRef, InvalidRefError, parse_destination, parse_ref
from adapters_hub.refs import is_bare_repo_id


@pytest.mark.parametrize("ref, repo, revision", [
    ("org/name", "org/name", None),
    ("org/name@v1.2", "org/name", "v1.2"),
    ("hf://org/name", "org/name", None),
    ("hf://org/my.adapter-2@" + "a" * 40, "org/my.adapter-2", "a" * 40),
    ("hf://org/name@refs/pr/1", "org/name", "refs/pr/1"),
])
def test_hugging_face_refs(ref, repo, revision):
    assert parse_ref(ref) == AdapterRef("hf", repo, revision)


def test_file_refs_name_a_folder_hub(tmp_path):
    parsed = parse_ref(f"file://{tmp_path}/hub/org/name@abc1234")
    assert parsed == AdapterRef("folder", "org/name", "abc1234", tmp_path / "hub")
    assert str(parsed) == f"file://{tmp_path}/hub/org/name@abc1234"
    assert parse_ref(f"file://{tmp_path}/hub/org/name").revision is None


def test_existing_package_folder_is_local(package, monkeypatch):
    assert parse_ref(str(package)) == AdapterRef("local", path=package)
    assert parse_ref(package) == AdapterRef("local", path=package)
    assert parse_ref(f"file://{package}") == AdapterRef("local", path=package)
    monkeypatch.chdir(package.parent)
    assert parse_ref("./pkg") == AdapterRef("local", path=package)


def test_a_bare_repo_id_that_is_also_a_folder_is_refused(tmp_path, monkeypatch, package):
    (tmp_path / "org").mkdir()
    package.rename(tmp_path / "org" / "name")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidRefError, match=r"names both the Hub repo org/name and the local folder ./org/name: "
                                              r"write ./org/name for the folder, or hf://org/name for the Hub"):
        parse_ref("org/name")
    with pytest.raises(InvalidRefError, match="names both"):
        parse_ref("org/name@main")
    assert parse_ref("./org/name").kind == "local"
    assert parse_ref("hf://org/name") == AdapterRef("hf", "org/name")


def test_folder_hub_repo_by_path(tmp_path):
    (tmp_path / "org" / "name" / "refs").mkdir(parents=True)
    assert parse_ref(str(tmp_path / "org" / "name")) == AdapterRef("folder", "org/name", None, tmp_path)
    assert parse_ref(f"{tmp_path}/org/name@main") == AdapterRef("folder", "org/name", "main", tmp_path)


@pytest.mark.parametrize("ref, message", [
    ("", "empty adapter ref"),
    ("just-a-name", "cannot parse adapter ref"),
    ("org/name/extra", "looks like a path but no such folder exists"),
    ("hf://../etc", "cannot parse adapter ref"),
    ("hf://org/..", "cannot parse adapter ref"),
    ("org/name@", "is not a revision"),
    ("org/name@../../x", "is not a revision"),
    ("s3://bucket/x", "unknown scheme"),
    ("file://host/abs/org/name", "needs an absolute path"),
    ("/no/such/folder", "no such folder exists"),
])
def test_bad_refs_are_refused(ref, message):
    with pytest.raises(InvalidRefError, match=message):
        parse_ref(ref)


@pytest.mark.parametrize("ref, repo, revision", [
    ("acme/imu-linear@refs/pr/1", "acme/imu-linear", "refs/pr/1"),
    ("acme/x@feature/x", "acme/x", "feature/x"),
])
def test_a_revision_with_slashes_is_still_a_hub_ref(ref, repo, revision):
    assert parse_ref(ref) == AdapterRef("hf", repo, revision)


@pytest.mark.parametrize("ref", ["org/name", "hf://org/name", "org/name@dev"])
def test_a_destination_on_hugging_face(ref):
    parsed = parse_destination(ref)
    assert parsed.kind == "hf" and parsed.repo == "org/name"


def test_a_destination_path_names_a_folder_hub_repo_that_need_not_exist(tmp_path, monkeypatch):
    expected = AdapterRef("folder", "org/name", None, tmp_path / "hub")
    assert parse_destination(str(tmp_path / "hub" / "org" / "name")) == expected
    assert parse_destination(f"file://{tmp_path}/hub/org/name") == expected
    assert parse_destination(tmp_path / "hub" / "org" / "name") == expected
    monkeypatch.chdir(tmp_path)
    assert parse_destination("./hub/org/name") == expected
    assert parse_destination("hub/org/name") == expected  # deeper than org/name: a path
    assert parse_destination("./hub/org/name@dev") == AdapterRef("folder", "org/name", "dev", tmp_path / "hub")
    (tmp_path / "hub" / "org" / "name").mkdir(parents=True)  # an existing, empty folder is still a repo
    assert parse_destination("./hub/org/name") == expected


@pytest.mark.parametrize("ref, message", [
    ("/srv/just-a-name", "is not a folder-hub repo"),
    ("/srv/hub/org/na me", "is not a folder-hub repo"),
    ("s3://bucket/org/name", "unknown scheme"),
    ("", "empty or invalid destination"),
])
def test_bad_destinations_are_refused(ref, message):
    with pytest.raises(InvalidRefError, match=message):
        parse_destination(ref)


def test_a_package_is_not_a_destination(package):
    with pytest.raises(InvalidRefError, match="is an adapter package, not a place to publish to"):
        parse_destination(str(package))


def test_a_bare_destination_that_is_also_a_folder_is_refused(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidRefError, match="names both"):
        parse_destination("org/name")


@pytest.mark.parametrize("ref, bare", [("org/name", True), ("org/name@v1", True), ("hf://org/name", False),
                                       ("file:///r/org/name", False), ("./org/name", False), ("/r/org/name", False),
                                       ("name", False)])
def test_bare_repo_ids_are_the_refs_that_do_not_name_their_hub(ref, bare):
    assert is_bare_repo_id(ref) is bare
