"""``anymal plugin new``: the scaffold writes a plugin distribution that builds, installs, shows up in
``anymal plugins`` and passes its own tests (the conformance kit and a few training steps on the tiny LLM).
``test_the_generated_plugin_installs_and_passes_its_own_tests`` is what CI does with a fresh scaffold."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from anymal_host.cli import cli
from anymal_host.scaffold import TEMPLATE_DIR, render

ROOT = Path(__file__).resolve().parent.parent
NAME = "heart_rate"  # an underscore exercises the class name (HeartRate) and the file extension
PACKAGE = f"anymal_plugin_{NAME}"
FILES = {
    ".gitignore",
    "README.md",
    "pyproject.toml",
    f"src/{PACKAGE}/__init__.py",
    f"src/{PACKAGE}/adapters/README.md",
    f"src/{PACKAGE}/data.py",
    f"src/{PACKAGE}/encoder.py",
    f"src/{PACKAGE}/examples/rising.{NAME}",
    f"src/{PACKAGE}/modality.py",
    f"src/{PACKAGE}/plugin.py",
    "tests/test_plugin.py",
    "tests/test_training.py",
}


def new(tmp_path: Path, *args: str):
    return CliRunner().invoke(cli, ["plugin", "new", *args, "--dir", str(tmp_path)])


def test_writes_the_plugin_distribution(tmp_path):
    result = new(tmp_path, NAME, "--description", 'Heart rate in "bpm", one reading a second')
    assert result.exit_code == 0, result.output
    root = tmp_path / f"anymal-plugin-{NAME}"
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == FILES
    # what was written, and the next commands
    assert f"{PACKAGE}/modality.py" in result.output and 'pip install -e ".[test]"' in result.output
    assert "anymal plugins" in result.output and "pytest" in result.output
    for path in root.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), f"{path} has a placeholder left"
            if path.suffix == ".py":
                ast.parse(path.read_text(), filename=str(path))
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == f"anymal-plugin-{NAME}" and "anymal>=0.1,<0.2" in project["dependencies"]
    assert project["description"] == 'Heart rate in "bpm", one reading a second'
    assert project["entry-points"]["anymal"] == {NAME: f"{PACKAGE}.plugin"}
    assert any(req.startswith("pytest") for req in project["optional-dependencies"]["test"])
    modality = (root / "src" / PACKAGE / "modality.py").read_text()
    assert "class HeartRateModality(Modality):" in modality and 'file_extensions = (".heart_rate",)' in modality


@pytest.mark.parametrize("name", ["Pulse", "1pulse", "heart-rate", "pulse_", "heart__rate", "class", "a" * 41])
def test_refuses_a_name_that_cannot_be_a_modality(tmp_path, name):
    result = new(tmp_path, name)
    assert result.exit_code == 2 and "Invalid value for NAME" in result.output
    assert name in result.output or "keyword" in result.output
    assert not any(tmp_path.iterdir())


def test_refuses_a_description_of_several_lines(tmp_path):
    result = new(tmp_path, "pulse", "--description", "one\ntwo")
    assert result.exit_code == 2 and "--description" in result.output and "one line" in result.output


def test_never_overwrites_without_force(tmp_path):
    assert new(tmp_path, "pulse").exit_code == 0
    root = tmp_path / "anymal-plugin-pulse"
    (root / "notes.txt").write_text("mine")
    (root / "README.md").write_text("edited")
    again = new(tmp_path, "pulse")
    assert again.exit_code == 1 and "already exists" in again.output and "--force" in again.output
    assert (root / "README.md").read_text() == "edited"
    forced = new(tmp_path, "pulse", "--force")
    assert forced.exit_code == 0, forced.output
    # the scaffold's files are written again; anything else in the folder (a .git, runs/) stays
    assert (root / "notes.txt").read_text() == "mine" and (root / "README.md").read_text().startswith("# anymal-plugin-pulse")


def test_a_placeholder_without_a_value_is_an_error():
    assert render("{{name}}-conv", {"name": "pulse"}) == "pulse-conv"
    with pytest.raises(KeyError, match=r"no value for placeholder \{\{nmae\}\}"):
        render("{{nmae}}", {"name": "pulse"}, where="x.tmpl")


def test_templates_are_data_not_host_code():
    templates = [p for p in TEMPLATE_DIR.rglob("*") if p.is_file()]
    assert templates and all(p.suffix == ".tmpl" for p in templates)  # pytest and setuptools skip them
    assert not [p for p in templates if p.name.startswith(".")]  # package-data globs skip hidden files
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "scaffold/template/**/*" in package_data["anymal_host"]


def test_the_generated_plugin_installs_and_passes_its_own_tests(tmp_path):
    """CI: generate, build a wheel, install it, list it with `anymal plugins`, run its tests against it."""
    assert new(tmp_path, NAME).exit_code == 0
    root = tmp_path / f"anymal-plugin-{NAME}"
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(root)], cwd=tmp_path)
    (wheel,) = wheels.glob("*.whl")
    run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)], cwd=tmp_path)
    # The installed copy, not src/: only the target folder and the host under test are on the path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)]), "ANYMAL_LOAD_PLUGINS": NAME,
           "ANYMAL_HOME": str(tmp_path / "home")}
    listed = run([sys.executable, "-m", "anymal_host.cli", "plugins"], cwd=tmp_path, env=env)
    assert f"{NAME} 0.1.0  [ok]" in listed and f"dataset: {NAME}:demo" in listed
    # installed, the plugin keeps `anymal --help` light: importing it (as every command does) loads no torch
    probe = ("import sys\nfrom anymal_host.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
             "    pass\nprint('torch' in sys.modules)")
    assert run([sys.executable, "-c", probe], cwd=tmp_path, env=env).strip().endswith("False")
    tested = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, env=env)
    assert " passed" in tested and "skipped" not in tested  # installed: the entry-point test runs too


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_force_never_writes_through_a_link(tmp_path):
    assert new(tmp_path, "pulse").exit_code == 0
    root = tmp_path / "anymal-plugin-pulse"
    victim = tmp_path / "victim.py"
    victim.write_text("keep me")
    (root / "README.md").unlink()
    (root / "README.md").symlink_to(victim)
    forced = new(tmp_path, "pulse", "--force")
    assert forced.exit_code == 1 and "is (or lies under) a link" in forced.output
    assert victim.read_text() == "keep me"
