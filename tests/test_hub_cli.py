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
