"""The plugin distributions are installable like real packages: a host range they are compatible with, PyPI
metadata (SPDX licence and its text, classifiers, project URLs, authors), READMEs that render on PyPI (no
relative links or images), and sdists that hold the licence but not the tests (tests live in the repository:
they need its fixtures, data and the embedded LLM)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
REPOSITORY = "https://github.com/anymal-project/anymal"
CLASSIFIERS = {
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
}
# Markdown links and images, and HTML src/href attributes.
LINK_TARGETS = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)|\b(?:src|href)\s*=\s*[\"']([^\"']+)")
ids = [p.name for p in PLUGINS]


def _project(plugin: Path) -> dict:
    return tomllib.loads((plugin / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _host_version() -> Version:
    return Version(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def test_there_are_plugins():
    assert {p.name for p in PLUGINS} >= {"anymal-plugin-imu", "anymal-plugin-image", "anymal-plugin-audio",
                                        "anymal-plugin-video"}


@pytest.mark.parametrize("plugin", PLUGINS, ids=ids)
def test_each_plugin_requires_a_compatible_host_range(plugin):
    requirements = {Requirement(r).name: Requirement(r) for r in _project(plugin)["dependencies"]}
    for name in ("anymal", "anymal-plugin-image"):
        if name not in requirements:
            continue
        specifier = requirements[name].specifier
        assert str(specifier), f"{plugin.name}: {name} without a version range"
        assert _host_version() in specifier  # the host of this checkout satisfies it
        assert Version("0.2.0") not in specifier and Version("1.0.0") not in specifier  # 0.x minors may break
    assert "anymal" in requirements


@pytest.mark.parametrize("plugin", PLUGINS, ids=ids)
def test_each_plugin_has_pypi_metadata(plugin):
    project = _project(plugin)
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    # setuptools refuses a licence classifier beside an SPDX expression (PEP 639).
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    assert CLASSIFIERS <= set(project["classifiers"])
    assert any(c.startswith("Development Status :: ") for c in project["classifiers"])
    assert {"name": "anymal contributors"} in project["authors"]
    urls = project["urls"]
    assert urls["Homepage"] == REPOSITORY and urls["Issues"] == f"{REPOSITORY}/issues"
    assert urls["Source"].startswith(REPOSITORY)


@pytest.mark.parametrize("plugin", PLUGINS, ids=ids)
def test_each_plugin_ships_the_full_apache_license(plugin):
    text = (plugin / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a notice
    assert text == (ROOT / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.parametrize("plugin", PLUGINS, ids=ids)
def test_readmes_render_on_pypi_without_relative_links(plugin):
    """PyPI shows the README without the repository around it: a relative link or image leads nowhere."""
    text = (plugin / "README.md").read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks are not links
    targets = [a or b for a, b in LINK_TARGETS.findall(prose)]
    relative = [t for t in targets if not t.startswith(("https://", "http://", "mailto:"))]
    assert not relative, f"{plugin.name}/README.md: relative links {relative}"
    assert not [t for t in targets if "github.com" in t and REPOSITORY not in t]


def _copy_for_sdist(plugin: Path, target: Path) -> Path:
    """The files that decide an sdist's contents (metadata, MANIFEST.in, the tests and the Python sources),
    without the bundled weights: building stays fast and leaves the plugin folder untouched."""
    copy = target / plugin.name
    for rel in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        if (plugin / rel).exists():
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy(plugin / rel, copy / rel)
    for path in [*plugin.glob("src/**/*.py"), *plugin.glob("tests/**/*")]:
        if path.is_file() and "__pycache__" not in path.parts:
            dst = copy / path.relative_to(plugin)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dst)
    return copy


def _sdist_members(plugin: Path, tmp_path: Path) -> tuple[list[str], str]:
    copy = _copy_for_sdist(plugin, tmp_path)
    out = tmp_path / "dist"
    code = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=copy, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with tarfile.open(out / done.stdout.strip().splitlines()[-1]) as sdist:
        names = [m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name]
        pkg_info = sdist.extractfile(next(m for m in sdist.getmembers() if m.name.endswith("/PKG-INFO")
                                          and m.name.count("/") == 1)).read().decode()
    return names, pkg_info


@pytest.mark.parametrize("plugin", [
    pytest.param(p, id=p.name, marks=pytest.mark.xfail(
        not (p / "MANIFEST.in").exists(), strict=True,
        reason=f"plugins/{p.name}/MANIFEST.in ('prune tests') is not there yet: setuptools puts tests/test*.py "
               f"(without conftest.py) into every sdist unless MANIFEST.in prunes them"))
    for p in PLUGINS])
def test_sdists_hold_the_license_and_not_the_tests(plugin, tmp_path):
    names, pkg_info = _sdist_members(plugin, tmp_path)
    assert "LICENSE" in names and "README.md" in names
    assert "License-Expression: Apache-2.0" in pkg_info and "License-File: LICENSE" in pkg_info
    assert not [n for n in names if n.startswith("tests/")], names
