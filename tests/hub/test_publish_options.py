"""Publishing options: a private repo, a branch instead of main, a pull request; and the model card of what is
published naming the repo it went to. Hugging Face through the real huggingface_hub client against the fake Hub;
folder hubs, which have branches but no visibility and no pull requests, refuse those two options."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from adapters_hub import (
    FolderHub, HFHub, HubError, HubFeatureUnsupportedError, InvalidRefError, Published, load_adapter_package,
    save_adapter_package,
)

from .conftest import make_config, make_tensors


@pytest.fixture
def hf(fake_hub, tmp_path) -> HFHub:
    return HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "hf-cache")


@pytest.fixture
def folder(tmp_path) -> FolderHub:
    return FolderHub(tmp_path / "hub")


def _card(path) -> str:
    return (path / "README.md").read_text(encoding="utf-8")


# -- Hugging Face Hub ------------------------------------------------------------------------------------------


def test_private_creates_a_private_repo(hf, fake_hub, package):
    published = hf.publish(package, "lab/secret", private=True)
    assert isinstance(published, Published) and published.branch == "main" and published.pr_url is None
    assert fake_hub.repos["lab/secret"].private
    assert hf.publish(package, "lab/secret", "again", private=True).revision  # a private repo takes more


def test_private_refuses_an_existing_public_repo_before_uploading(hf, fake_hub, package):
    hf.push(package, "lab/open")
    commits = len(fake_hub.repos["lab/open"].commits)
    with pytest.raises(HubError, match=r"lab/open already exists .* and is public.* publish without --private"):
        hf.publish(package, "lab/open", private=True)
    assert len(fake_hub.repos["lab/open"].commits) == commits


def test_a_branch_is_created_from_main_and_main_stays(hf, fake_hub, package, tmp_path):
    main = hf.push(package, "lab/imu", "v1")
    published = hf.publish(package, "lab/imu", "try on a branch", revision="dev")
    assert published.branch == "dev" and published.revision != main  # the card names lab/imu@dev
    assert fake_hub.repos["lab/imu"].refs["main"] == main
    assert fake_hub.repos["lab/imu"].refs["dev"] == published.revision
    pulled = hf.pull("lab/imu", "dev")
    assert 'host.load_adapter("lab/imu@dev")' in _card(pulled)
    assert hf.info("lab/imu", "dev").commit_message == "try on a branch"
    assert hf.publish(package, "lab/imu", "again", revision="dev").branch == "dev"  # an existing branch is fine


def test_create_pr_opens_a_pull_request_and_leaves_main(hf, fake_hub, package):
    main = hf.push(package, "lab/imu", "v1")
    save_adapter_package(package, make_config(), make_tensors(5))
    published = hf.publish(package, "lab/imu", "proposed", create_pr=True)
    assert published.pr_url == f"{fake_hub.url}/lab/imu/discussions/1"
    assert fake_hub.repos["lab/imu"].refs["main"] == main
    assert fake_hub.repos["lab/imu"].refs["refs/pr/1"] == published.revision
    assert 'host.load_adapter("lab/imu")' in _card(hf.pull("lab/imu", "refs/pr/1"))  # names main, where it goes


def test_create_pr_into_another_branch_is_refused_before_anything_is_sent(hf, fake_hub, package):
    with pytest.raises(HubFeatureUnsupportedError, match="opens pull requests against main only"):
        hf.publish(package, "lab/imu", create_pr=True, revision="dev")
    assert fake_hub.requests == []


def test_the_published_card_names_the_repo_and_is_hub_grade(hf, package):
    hf.push(package, "lab/imu-small")
    card = _card(hf.pull("lab/imu-small"))
    assert 'host.load_adapter("lab/imu-small")' in card and "ORG/NAME" not in card
    data = ModelCard(card).data
    assert data.library_name == "anymal" and "anymal-imu" in data.tags
    assert "ORG/NAME" in _card(package)  # the author's folder is left as it was


def test_an_invalid_branch_is_refused(hf, package):
    with pytest.raises(InvalidRefError, match="is not a revision"):
        hf.publish(package, "lab/imu", revision="../main")


# -- folder hubs -----------------------------------------------------------------------------------------------


def test_folder_hub_branches(folder, package):
    main = folder.push(package, "lab/imu", "v1")
    published = folder.publish(package, "lab/imu", "on a branch", revision="feature/x")
    assert published == Published("lab/imu", published.revision, "feature/x")
    assert published.revision != main  # the card names the branch
    assert folder.pull("lab/imu").name == main
    pulled = folder.pull("lab/imu", "feature/x")
    assert pulled.name == published.revision
    assert "file://HUB_ROOT/lab/imu@feature/x" in _card(pulled)
    assert str(folder.root) not in _card(pulled)  # a card carries no absolute path
    assert folder.info("lab/imu", "feature/x").commit_message == "on a branch"
    load_adapter_package(pulled)


def test_a_folder_hub_branch_cannot_share_a_name_with_a_branch_folder(folder, package):
    folder.publish(package, "lab/imu", revision="feature/x")
    with pytest.raises(HubError, match="cannot have a branch 'feature'"):
        folder.publish(package, "lab/imu", revision="feature")


@pytest.mark.parametrize("option, message", [
    ({"private": True}, "has no private repos: whoever can read the folder reads every package"),
    ({"create_pr": True}, "has no pull requests: publish to a branch"),
])
def test_folder_hubs_refuse_what_they_cannot_honour_before_writing(folder, package, option, message):
    with pytest.raises(HubFeatureUnsupportedError, match=message):
        folder.publish(package, "lab/imu", **option)
    assert not folder.root.exists()
    folder.publish(package, "lab/imu", private=False)  # asking for a public repo is what a folder hub is
