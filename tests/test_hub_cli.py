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
from .hub.conftest import fake_hub  # noqa: F401


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
