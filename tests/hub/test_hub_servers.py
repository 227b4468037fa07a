"""Hub servers other than the one the tests imitate: servers that speak the Hugging Face Hub API only partly or
differently (olah, a self-hosted mirror serving git repos, is the one these switches copy; see olah_check.py for
the check against olah itself). Every operation ends in an answer or a HubError subclass that says what happened:
no answer (HubUnreachableError), a server failure (HubServerError), a feature the server lacks
(HubFeatureUnsupportedError), a missing repo or revision (RepoNotFoundError). The client is the real
huggingface_hub, unpatched, against the fake Hub on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from adapters_hub import (
    CONFIG_NAME, AdapterPackageError, AdapterPackageWarning, HFHub, HubError, HubFeatureUnsupportedError, HubOfflineWarning,
    HubServerError, HubUnreachableError, PackageFileMissingError, PackageLimits, PackageTooLargeError, RepoNotFoundError, resolve,
)

REPO_NOT_FOUND = (401, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
BAD_GATEWAY = (502, b"<html>502 Bad Gateway</html>", {})
NOT_FOUND = (404, b"Not Found", {})
EMPTY_OK = (200, b"", {})


@pytest.fixture
def hf(fake_hub, tmp_path) -> HFHub:
    return HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "hf-cache")


@pytest.fixture
def published(hf, package) -> str:
    return hf.push(package, "lab/imu", "Add IMU adapter")


def test_a_ref_without_revision_reads_main(hf, fake_hub, published, tmp_path):
    """olah answers repo info only at an explicit revision (GET /api/models/lab/imu is "not found" for a mirrored
    repo); snapshot_download asks for main, and so must every hub operation given no @revision."""
    fake_hub.answers[r"/api/models/lab/imu"] = REPO_NOT_FOUND
    assert hf.pull("lab/imu").name == published
    assert hf.info("lab/imu").revision == published
    assert resolve("lab/imu", tmp_path / "hf-cache", hf_endpoint=fake_hub.url, token=False).name == published


def test_unknown_revision_answered_as_a_missing_repo(hf, fake_hub, published):
    """olah answers "repo not found" for an unknown revision: the error still names the revision."""
    fake_hub.answers[r"/api/models/lab/imu/revision/v9"] = REPO_NOT_FOUND
    with pytest.raises(RepoNotFoundError, match="lab/imu has no revision 'v9'"):
        hf.pull("lab/imu", "v9")
    with pytest.raises(RepoNotFoundError, match="no repo 'lab/none'"):
        hf.info("lab/none", "v9")


@pytest.mark.parametrize("answer", [EMPTY_OK, NOT_FOUND], ids=["empty-200", "404"])
def test_a_server_without_a_listing_endpoint(hf, fake_hub, published, answer):
    fake_hub.answers[r"/api/models"] = answer
    with pytest.raises(HubFeatureUnsupportedError, match=r"does not support listing models .*anymal hub info ORG/NAME"):
        hf.list()
    assert hf.info("lab/imu").revision == published  # the rest of the API still works


def test_commit_history_with_authors_by_name(hf, fake_hub, published, package):
    """olah's commit entries name authors by "name", which huggingface_hub's own parser refuses (KeyError)."""
    fake_hub.commit_authors_by_name = True
    second = hf.push(package, "lab/imu", "Same files, new commit")  # the Hub commits even without changes
    info = hf.info("lab/imu", published)
    assert info.commit_message == "Add IMU adapter"
    assert info.revisions[0] == published and len(info.revisions) >= 2
    assert hf.info("lab/imu").revisions[0] == second


@pytest.mark.parametrize("answer", [NOT_FOUND, (200, b'{"error": "no history here"}', {}), EMPTY_OK],
                         ids=["404", "not-a-list", "empty-200"])
def test_a_server_without_commit_history(hf, fake_hub, published, answer):
    fake_hub.answers[r"/api/models/lab/imu/commits/.*"] = answer
    with pytest.warns(AdapterPackageWarning, match="does not support commit history"):
        info = hf.info("lab/imu")
    assert info.revision == published and info.revisions == [published] and info.commit_message is None
    assert info.summary.name == "imu-small"


def test_a_server_error_is_not_reported_as_unreachable(hf, fake_hub, published):
    fake_hub.answers[r"/api/models/lab/imu/revision/.*"] = BAD_GATEWAY
    with pytest.raises(HubServerError, match=r"answered 502 Bad Gateway .* while reading lab/imu@main: .*retry later") \
            as caught:
        hf.info("lab/imu")
    assert "cannot reach" not in str(caught.value)
    with pytest.raises(HubServerError, match="answered 502 Bad Gateway .*is not in the cache"):
        hf.pull("lab/imu")  # nothing cached yet
    del fake_hub.answers[r"/api/models/lab/imu/revision/.*"]
    hf.pull("lab/imu")
    fake_hub.answers[r"/api/models/lab/imu/revision/.*"] = BAD_GATEWAY
    with pytest.warns(HubOfflineWarning, match="answered 502 Bad Gateway .*using the cached copy of lab/imu@main"):
        assert hf.pull("lab/imu").name == published


def test_no_answer_at_all(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = HFHub(endpoint=f"http://127.0.0.1:{s.getsockname()[1]}", token=False, cache_dir=tmp_path / "c")
    with pytest.raises(HubUnreachableError, match="cannot reach the hub at .*check the address"):
        dead.info("lab/imu")


def test_repo_info_that_is_not_json(hf, fake_hub, published):
    fake_hub.answers[r"/api/models/lab/imu/revision/.*"] = (200, b"<html>a login page</html>", {})
    with pytest.raises(HubError, match="gave an answer anymal cannot read .*does not speak the Hugging Face Hub API"):
        hf.info("lab/imu")


def test_sizes_missing_from_repo_info_are_read_from_the_file_tree(fake_hub, tmp_path, package, published):
    """olah leaves sizes out of repo info; the size limits must still apply before any download."""
    fake_hub.sizes_in_repo_info = False
    small = HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "c", limits=PackageLimits(max_file_bytes=100))
    fake_hub.requests.clear()
    with pytest.raises(PackageTooLargeError, match="over the 100-byte limit"):
        small.pull("lab/imu")
    assert not [path for _, path in fake_hub.requests if "/resolve/" in path]


def test_one_broken_repo_is_an_unreadable_row_in_the_listing(hf, fake_hub, published, package):
    hf.push(package, "lab/bad")
    fake_hub.commit("lab/bad", "break the config", {CONFIG_NAME: b"{not json"})
    hf.push(package, "lab/notes")
    fake_hub.commit("lab/notes", "drop the config", {CONFIG_NAME: None})
    listed = dict(hf.list())
    assert listed["lab/imu"].error is None and listed["lab/imu"].name == "imu-small"
    assert "is not valid JSON" in listed["lab/bad"].error
    assert f"has no {CONFIG_NAME}: it is not an anymal adapter" in listed["lab/notes"].error
    with pytest.raises(AdapterPackageError, match="is not valid JSON"):
        hf.info("lab/bad")
    fake_hub.requests.clear()
    with pytest.raises(PackageFileMissingError, match="lab/notes@.* has no anymal_adapter.json"):
        hf.pull("lab/notes")
    assert not [path for _, path in fake_hub.requests if "/resolve/" in path]  # refused before downloading


def test_listing_rows_keep_working_when_one_config_download_fails(hf, fake_hub, published, package):
    hf.push(package, "lab/gated")
    # (A 5xx here would be retried by huggingface_hub for ~20 s before failing the same way.)
    fake_hub.answers[r"/lab/gated/resolve/.*"] = (403, b"Forbidden", {})
    listed = dict(hf.list())
    assert listed["lab/imu"].error is None
    assert "answered 403 Forbidden" in listed["lab/gated"].error and "log in with a token" in listed["lab/gated"].error
    assert "\n" not in listed["lab/gated"].error  # printable as one row


def test_a_read_only_server_reports_publishing_as_unsupported(hf, fake_hub, package):
    """olah is a read-only mirror: POST /api/repos/create answers 405."""
    fake_hub.post_answers[r"/api/repos/create"] = (405, b'{"detail":"Method Not Allowed"}', {})
    with pytest.raises(HubFeatureUnsupportedError, match=r"does not support publishing .*Publish to a folder hub"):
        hf.push(package, "lab/imu")
