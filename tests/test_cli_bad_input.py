"""The CLI never prints a traceback for a bad package: the whole bad corpus goes through `anymal chat --adapter`
and `anymal hub push`, and each run ends with exactly one `error:` line and exit code 1 (ANYMAL_DEBUG unset).

The CLI runs in-process (`anymal_host.cli.main`) against the tiny LLaMA saved to a folder (`--llm DIR`) and the
toy plugin, so the real command path runs: argument parsing, LLM load, hot-load, the error printer.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from adapters_hub import save_adapter_package
from anymal_host import ModalityAdapter, plugins
from anymal_host.cli import main

from .conftest import toy_config
from .test_bad_packages import CASES
from .test_hotload import CORRUPTIONS

ALL_CASES = [(c[0], c[2]) for c in CASES] + [(c[0], c[1]) for c in CORRUPTIONS]


@pytest.fixture
def cli_env(registry, monkeypatch, tmp_path, tiny_dir):
    monkeypatch.setattr(plugins, "_registry", registry)
    monkeypatch.delenv("ANYMAL_DEBUG", raising=False)
    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path / "home"))
    yield
    plugins.reset_registry()


@pytest.fixture
def good_package(tiny_dir, registry, tmp_path):
    from anymal_host import LLM

    llm = LLM.load(str(tiny_dir))  # the same weights the CLI will load: same fingerprint
    torch.manual_seed(1)
    adapter = ModalityAdapter.from_config(toy_config(llm), registry)
    folder = tmp_path / "good"
    save_adapter_package(folder, adapter.config, adapter.weights_for_saving())
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def assert_one_error_line(code: int, err: str, case_id: str) -> None:
    assert "Traceback" not in err, f"{case_id}: {err}"
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 1 and len(errors) == 1, f"{case_id}: exit {code}, stderr {err!r}"


def test_the_good_package_works_through_the_same_commands(cli_env, capsys, tiny_dir, good_package, tmp_path):
    code, out, err = run(capsys, "chat", "--llm", str(tiny_dir), "--adapter", str(good_package),
                         "--max-new-tokens", "2", "hello")
    assert code == 0, err
    code, out, err = run(capsys, "hub", "push", str(good_package), f"file://{tmp_path}/hub/lab/good")
    assert code == 0 and "published toy-meanpool" in out, err


@pytest.mark.timeout(600)
def test_every_bad_package_gives_one_error_line_in_chat_and_push(cli_env, capsys, tiny_dir, good_package, tmp_path):
    for i, (case_id, spoil) in enumerate(ALL_CASES):
        bad = tmp_path / f"bad-{i}"
        shutil.copytree(good_package, bad)
        spoil(bad)
        code, _, err = run(capsys, "chat", "--llm", str(tiny_dir), "--adapter", str(bad), "--max-new-tokens", "2",
                           "hello")
        assert_one_error_line(code, err, f"chat {case_id}")
        code, _, err = run(capsys, "hub", "push", str(bad), f"file://{tmp_path}/hub/lab/bad-{i}")
        assert_one_error_line(code, err, f"push {case_id}")
        assert not (tmp_path / "hub" / "lab" / f"bad-{i}" / "refs").exists(), f"{case_id} was published"
