"""`anymal hub push/pull/ls/info` and `anymal adapters`, in-process with click's runner, on a folder hub (and the
fake Hugging Face Hub for ls/info through $HF_ENDPOINT)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from adapters_hub import FolderHub, save_adapter_package
from anymal_host import ModalityAdapter, hookimpl, plugins
from anymal_host.cli import cli, main

from .conftest import toy_config
from .hub.conftest import fake_hub, resetting_endpoint  # noqa: F401


@pytest.fixture
def package(tiny, registry, tmp_path):
    torch.manual_seed(0)
    adapter = ModalityAdapter.from_config(toy_config(tiny), registry)
    adapter.config.metrics = {"activity_accuracy": 0.875}
    folder = tmp_path / "pkg"
    save_adapter_package(folder, adapter.config, adapter.weights_for_saving())
    return folder


@pytest.fixture
def global_registry(registry, monkeypatch):
    """Make the CLI's process-wide registry the test one (default plugins + the toy plugin)."""
    monkeypatch.setattr(plugins, "_registry", registry)
    yield registry
    plugins.reset_registry()


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_push_pull_ls_info_on_a_folder_hub(package, tmp_path, global_registry):
    root = tmp_path / "hub"
    result = invoke("hub", "push", str(package), f"file://{root}/lab/toy", "-m", "first toy")
    assert result.exit_code == 0, result.output
    assert "published toy-meanpool (toy) to" in result.output
    revision = result.output.strip().rsplit("@", 1)[1]
    assert len(revision) == 40

    pulled = invoke("hub", "pull", f"file://{root}/lab/toy")
    assert pulled.exit_code == 0
    assert pulled.output.strip() == str(root / "lab" / "toy" / "revisions" / revision)

    for spec in (f"file://{root}", str(root)):
        listing = invoke("hub", "ls", "--hub", spec)
        assert listing.exit_code == 0
        assert f"lab/toy@{revision[:12]}  toy  meanpool projector, 4 tokens  llm tiny-llama-32  activity_accuracy=0.875" \
            in listing.output
    assert "No adapters for modality 'imu'" in invoke("hub", "ls", "--hub", str(root), "--modality", "imu").output
    assert "lab/toy" in invoke("hub", "ls", "--modality", "toy", env={"ANYMAL_HUB": str(root)}).output

    info = invoke("hub", "info", f"file://{root}/lab/toy")
    assert info.exit_code == 0
    for fragment in (f"lab/toy@{revision}", "adapter    toy-meanpool for modality toy", "meanpool, 4 tokens",
                     "llm        tiny-llama-32, hidden size 32", "commit     first toy",
                     "files      README.md, adapter.safetensors, anymal_adapter.json"):
        assert fragment in info.output


def test_push_leaves_trainer_state_out(package, tmp_path, global_registry):
    (package / "trainer_state.json").write_text(json.dumps({"step": 10}))
    (package / "optimizer.safetensors").write_bytes(b"not even read")
    root = tmp_path / "hub"
    result = invoke("hub", "push", str(package), f"file://{root}/lab/ckpt")
    assert result.exit_code == 0, result.output
    assert "leaving out trainer_state.json, optimizer.safetensors" in result.output
    published = FolderHub(root).pull("lab/ckpt")
    assert sorted(p.name for p in published.iterdir()) == ["README.md", "adapter.safetensors", "anymal_adapter.json"]
    assert (package / "trainer_state.json").exists()  # the checkpoint itself is untouched


def test_hub_errors_are_one_line(package, tmp_path, capsys):
    cases = [
        ["hub", "info", f"file://{tmp_path}/hub/lab/missing"],
        ["hub", "pull", "gopher://lab/x"],
        ["hub", "ls", "--hub", str(tmp_path / "no-such-hub")],
        ["hub", "push", str(tmp_path), f"file://{tmp_path}/hub/lab/x"],  # not a package
    ]
    for argv in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    result = CliRunner().invoke(cli, ["hub", "push", str(package), f"file://{tmp_path}/hub/lab/x@v1"])
    assert result.exit_code == 2 and "leave out @v1" in result.output


def test_ls_and_info_on_hugging_face_through_hf_endpoint(package, fake_hub):
    from adapters_hub import HFHub

    revision = HFHub(endpoint=fake_hub.url, token=False).push(package, "lab/toy", "toy on hf")
    env = {"HF_ENDPOINT": fake_hub.url, "HF_TOKEN": "", "ANYMAL_HUB": None}
    listing = invoke("hub", "ls", "--modality", "toy", env=env)
    assert f"lab/toy@{revision[:12]}  toy  meanpool projector" in listing.output
    info = invoke("hub", "info", "lab/toy", env=env)
    assert f"lab/toy@{revision}" in info.output and f"Hugging Face Hub {fake_hub.url}" in info.output


def test_adapters_lists_bundled_and_loaded(global_registry, tiny, package, tmp_path):
    llm_dir = tmp_path / "tiny-llm"
    tiny.model.save_pretrained(llm_dir)
    tiny.tokenizer.save_pretrained(llm_dir)

    class Bundler:
        @hookimpl
        def register_adapters(self, register):
            register("toy-bundled", package)

    global_registry.add_plugin(Bundler(), name="bundler")
    listing = invoke("adapters")
    assert "toy-bundled  [bundled, loads on first use]" in listing.output
    assert "not checked (--check)" in listing.output

    checked = invoke("adapters", "--llm", str(llm_dir), "--adapter", str(package), "--check")
    assert checked.exit_code == 0, checked.output
    assert "toy-meanpool  [folder, active]" in checked.output
    assert "toy-bundled  [bundled, loads on first use]" in checked.output
    assert checked.output.count("matches host LLM") == 2


def test_chat_with_a_forced_adapter_prints_one_warning_line(global_registry, tiny, package, tmp_path, capsys):
    llm_dir = tmp_path / "tiny-llm"
    tiny.model.save_pretrained(llm_dir)
    tiny.tokenizer.save_pretrained(llm_dir)
    config = json.loads((package / "anymal_adapter.json").read_text())
    config["llm"]["fingerprint"] = "sha256:" + "0" * 64
    (package / "anymal_adapter.json").write_text(json.dumps(config))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # refused without --force: one line
        main(["chat", "--llm", str(llm_dir), "--adapter", str(package), "hi"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: adapter 'toy-meanpool' was trained against") and err.count("\n") == 1
    # weights metadata must agree with the config for --force to get past the header check: re-save
    from safetensors.torch import load_file

    from adapters_hub import AdapterConfig

    save_adapter_package(package, AdapterConfig.from_dict(config), load_file(str(package / "adapter.safetensors")))
    main(["chat", "--llm", str(llm_dir), "--adapter", str(package), "--force", "--max-new-tokens", "2", "hi"])
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("warning: ")] == [
        next(line for line in err.splitlines() if "loading anyway because force=True" in line)]
    assert "loaded adapter toy-meanpool" in err


def _run_failing(argv, capsys) -> str:
    """Run ``anymal ARGV`` as the console script does; it must fail with exit 1 and one ``error:`` line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1, (argv, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err + out, (argv, err)
    return err


def _run_ok(argv, capsys) -> tuple[str, str]:
    capsys.readouterr()
    main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "error:" not in err, (argv, out, err)
    return out, err


def test_a_damaged_repo_in_a_folder_hub_is_listed_as_unreadable(package, tmp_path, capsys):
    hub = FolderHub(tmp_path / "hub")
    good = hub.push(package, "lab/toy")
    bad = hub.push(package, "lab/bad")
    (hub.root / "lab" / "bad" / "revisions" / bad / "anymal_adapter.json").write_text("{not json")
    out, _ = _run_ok(["hub", "ls", "--hub", str(hub.root)], capsys)
    assert f"lab/bad@{bad[:12]}  unreadable: anymal_adapter.json is not valid JSON" in out
    assert f"lab/toy@{good[:12]}  toy  meanpool projector" in out
    err = _run_failing(["hub", "info", f"file://{hub.root}/lab/bad"], capsys)
    assert "anymal_adapter.json is not valid JSON" in err


def test_hub_commands_against_a_server_that_speaks_the_api_partly(package, fake_hub, tmp_path, monkeypatch, capsys):
    """What olah (a self-hosted mirror serving git repos) does differently: no model listing (an empty 200),
    repo info only at an explicit revision, commit authors by name, no sizes in repo info."""
    from adapters_hub import HFHub

    revision = HFHub(endpoint=fake_hub.url, token=False).push(package, "lab/toy", "toy on a mirror")
    fake_hub.answers[r"/api/models"] = (200, b"", {})
    fake_hub.answers[r"/api/models/lab/toy"] = (401, b"{}", {"X-Error-Code": "RepoNotFound"})
    fake_hub.commit_authors_by_name = True
    fake_hub.sizes_in_repo_info = False
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANYMAL_HUB", raising=False)

    out, _ = _run_ok(["hub", "pull", "lab/toy"], capsys)
    assert out.strip().endswith(f"models--lab--toy/snapshots/{revision}")
    out, _ = _run_ok(["hub", "info", "lab/toy"], capsys)
    assert f"lab/toy@{revision}" in out and "commit     toy on a mirror" in out
    err = _run_failing(["hub", "ls"], capsys)
    assert "does not support listing models" in err and "anymal hub info ORG/NAME" in err

    fake_hub.answers[r"/api/models/lab/toy/commits/.*"] = (404, b"Not Found", {})
    out, err = _run_ok(["hub", "info", "lab/toy"], capsys)
    assert f"lab/toy@{revision}" in out and "warning: " in err and "does not support commit history" in err

    fake_hub.answers[r"/api/models/lab/toy/revision/.*"] = (503, b"down for maintenance", {})
    err = _run_failing(["hub", "info", f"lab/toy@{revision}"], capsys)
    assert "answered 503 Service Unavailable" in err and "retry later" in err and "cannot reach" not in err
    out, err = _run_ok(["hub", "pull", "lab/toy"], capsys)  # pulled before: the cached copy, with a warning
    assert out.strip().endswith(revision) and "answered 503 Service Unavailable" in err


# -- push destinations and options ------------------------------------------------------------------------------


def test_push_to_a_plain_folder_path_or_to_hub_root_plus_repo_id(package, tmp_path, global_registry, capsys,
                                                                 monkeypatch):
    root = tmp_path / "hub"
    out, _ = _run_ok(["hub", "push", str(package), str(root / "lab" / "by-path")], capsys)
    assert out.startswith(f"published toy-meanpool (toy) to file://{root}/lab/by-path@")
    out, _ = _run_ok(["hub", "push", str(package), "lab/by-hub", "--hub", str(root)], capsys)
    assert out.startswith(f"published toy-meanpool (toy) to file://{root}/lab/by-hub@")
    monkeypatch.chdir(tmp_path)
    out, _ = _run_ok(["hub", "push", str(package), "./hub/lab/relative"], capsys)
    assert f"file://{root}/lab/relative@" in out
    assert [repo for repo, _ in FolderHub(root).list()] == ["lab/by-hub", "lab/by-path", "lab/relative"]
    # The same --hub reads a bare repo id back.
    out, _ = _run_ok(["hub", "info", "lab/by-hub", "--hub", str(root)], capsys)
    assert out.startswith("lab/by-hub@") and f"folder hub {root}" in out
    out, _ = _run_ok(["hub", "pull", "lab/by-hub", "--hub", str(root)], capsys)
    assert out.strip().startswith(str(root / "lab" / "by-hub" / "revisions"))


def test_a_package_folder_is_not_a_destination(package, tmp_path, global_registry, capsys):
    err = _run_failing(["hub", "push", str(package), str(package)], capsys)
    assert "is an adapter package, not a place to publish to" in err


def test_push_to_a_branch_of_a_folder_hub(package, tmp_path, global_registry, capsys):
    root = tmp_path / "hub"
    main_out, _ = _run_ok(["hub", "push", str(package), f"{root}/lab/toy"], capsys)
    out, _ = _run_ok(["hub", "push", str(package), f"{root}/lab/toy", "--revision", "dev", "-m", "on dev"], capsys)
    assert out.rstrip().endswith("(branch dev)")
    dev = out.split("@", 1)[1].split()[0]
    assert FolderHub(root).pull("lab/toy", "dev").name == dev
    assert FolderHub(root).pull("lab/toy").name == main_out.strip().rsplit("@", 1)[1]
    info, _ = _run_ok(["hub", "info", f"file://{root}/lab/toy@dev"], capsys)
    assert "commit     on dev" in info


@pytest.mark.parametrize("option, message", [("--private", "has no private repos"),
                                             ("--create-pr", "has no pull requests")])
def test_folder_hubs_refuse_private_and_pull_requests_before_checking(package, tmp_path, global_registry, capsys,
                                                                      monkeypatch, option, message):
    import anymal_host.loading as loading

    monkeypatch.setattr(loading, "verify_package", lambda *a, **k: pytest.fail("checked before refusing"))
    err = _run_failing(["hub", "push", str(package), f"{tmp_path}/hub/lab/toy", option], capsys)
    assert message in err and not (tmp_path / "hub").exists()


def test_push_options_on_hugging_face(package, fake_hub, global_registry, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.delenv("ANYMAL_HUB", raising=False)
    out, _ = _run_ok(["hub", "push", str(package), "lab/toy", "--private"], capsys)
    assert out.startswith("published toy-meanpool (toy) to lab/toy@") and fake_hub.repos["lab/toy"].private
    out, _ = _run_ok(["hub", "push", str(package), "lab/toy", "--revision", "dev"], capsys)
    assert out.rstrip().endswith("(branch dev)") and "dev" in fake_hub.repos["lab/toy"].refs
    (package / "notes.md").write_text("what changed")
    out, _ = _run_ok(["hub", "push", str(package), "lab/toy", "--create-pr"], capsys)
    assert out.strip() == (f"opened a pull request for toy-meanpool (toy) on lab/toy: "
                           f"{fake_hub.url}/lab/toy/discussions/1")
    err = _run_failing(["hub", "push", str(package), "lab/toy", "--create-pr", "--revision", "dev"], capsys)
    assert "pull requests against main only" in err
    result = CliRunner().invoke(cli, ["hub", "push", str(package), "lab/toy@dev"])
    assert result.exit_code == 2 and "--revision dev" in result.output


# -- --json -------------------------------------------------------------------------------------------------------

SUMMARY_KEYS = {"repo", "revision", "name", "modality", "llm_name", "llm_hidden_size", "llm_fingerprint", "num_tokens",
                "projector", "has_lora", "metrics", "anymal_version", "schema_version", "error", "token_mode", "tokens"}


def test_json_output_of_ls_info_and_pull(package, tmp_path, capsys):
    hub = FolderHub(tmp_path / "hub")
    revision = hub.push(package, "lab/toy", "first toy")
    bad = hub.push(package, "lab/bad")
    (hub.root / "lab" / "bad" / "revisions" / bad / "anymal_adapter.json").write_text("{not json")

    out, _ = _run_ok(["hub", "ls", "--hub", str(hub.root), "--json"], capsys)
    listing = json.loads(out)
    assert [row["repo"] for row in listing] == ["lab/bad", "lab/toy"]
    assert all(set(row) == SUMMARY_KEYS for row in listing)
    toy = listing[1]
    assert toy["revision"] == revision and toy["modality"] == "toy" and toy["error"] is None
    assert toy["metrics"] == {"activity_accuracy": 0.875} and toy["tokens"] == "4 tokens"
    assert "not valid JSON" in listing[0]["error"]
    out, _ = _run_ok(["hub", "ls", "--hub", str(hub.root), "--json", "--modality", "imu"], capsys)
    assert json.loads(out) == [row for row in listing if row["error"]]  # a broken repo's modality is unknown

    out, _ = _run_ok(["hub", "info", f"file://{hub.root}/lab/toy", "--json"], capsys)
    info = json.loads(out)
    assert set(info) == {"hub", "repo", "revision", "adapter", "files", "commit_message", "revisions"}
    assert info["revision"] == revision and info["commit_message"] == "first toy"
    assert info["adapter"] == toy and info["hub"] == f"folder hub {hub.root}"
    assert info["files"] == ["README.md", "adapter.safetensors", "anymal_adapter.json"]

    out, _ = _run_ok(["hub", "pull", f"file://{hub.root}/lab/toy", "--json"], capsys)
    assert json.loads(out) == {"ref": f"file://{hub.root}/lab/toy", "hub": f"folder hub {hub.root}", "repo": "lab/toy",
                               "revision": revision, "path": str(hub.root / "lab" / "toy" / "revisions" / revision)}
    out, _ = _run_ok(["hub", "pull", str(package), "--json"], capsys)
    assert json.loads(out) == {"ref": str(package), "hub": None, "repo": None, "revision": None, "path": str(package)}


def test_json_errors_go_to_stderr(tmp_path, capsys):
    for argv in (["hub", "info", f"file://{tmp_path}/hub/lab/missing", "--json"],
                 ["hub", "ls", "--hub", str(tmp_path / "no-such-hub"), "--json"],
                 ["hub", "pull", f"file://{tmp_path}/hub/lab/missing", "--json"]):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        out, err = capsys.readouterr()
        assert exit_info.value.code == 1 and out == "", argv
        assert err.startswith("error: ") and err.count("\n") == 1, argv


def test_json_listing_of_a_hugging_face_hub(package, fake_hub, capsys, monkeypatch):
    from adapters_hub import HFHub

    revision = HFHub(endpoint=fake_hub.url, token=False).push(package, "lab/toy")
    monkeypatch.setenv("HF_TOKEN", "")
    out, _ = _run_ok(["hub", "ls", "--hub", fake_hub.url, "--json"], capsys)
    assert [(row["repo"], row["revision"], row["name"]) for row in json.loads(out)] == [
        ("lab/toy", revision, "toy-meanpool")]
    out, _ = _run_ok(["hub", "ls", "--hub", fake_hub.url, "--json", "--modality", "imu"], capsys)
    assert json.loads(out) == []


# -- an unreachable hub -------------------------------------------------------------------------------------------


def test_ls_against_a_hub_that_refuses_connections_fails_at_once_with_the_fixes(capsys, monkeypatch):
    from .hub.conftest import closed_port_url

    monkeypatch.setenv("HF_TOKEN", "")
    url = closed_port_url()
    err = _run_failing(["hub", "ls", "--hub", url], capsys)
    assert f"cannot reach the hub at {url}" in err
    assert "HF_HUB_OFFLINE=1" in err and "--hub" in err and "network" in err


def test_ls_info_and_pull_try_an_unanswering_hub_once(resetting_endpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", resetting_endpoint.url)
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANYMAL_HUB", raising=False)
    for n, argv in enumerate((["hub", "ls"], ["hub", "info", "lab/toy"], ["hub", "pull", "lab/toy"]), start=1):
        assert "cannot reach the hub" in _run_failing(argv, capsys)
        assert resetting_endpoint.connections == n, argv
