"""Nothing heavy at import: a plugin's `from anymal_host import hookimpl` and `anymal --help` (which imports
every installed plugin to list its commands) load no torch, numpy or transformers. Checked in a fresh
interpreter, where sys.modules shows exactly what was imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "transformers", "safetensors")


def _imported_after(code: str) -> dict[str, bool]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("code", [
    "from anymal_host import hookimpl",
    "from anymal_host import hookimpl, AnymalError, InvalidSignalError",
    "from anymal_host.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from anymal_host.cli import main\ntry:\n    main(['hub', '--help'])\nexcept SystemExit:\n    pass",
], ids=["hookimpl", "errors", "anymal --help", "anymal hub --help"])
def test_no_heavy_import(code):
    loaded = _imported_after(code)
    assert not any(loaded.values()), f"imported: {[m for m, yes in loaded.items() if yes]}"


def test_listing_the_installed_plugins_imports_no_torch():
    """`anymal plugins` and `anymal modalities` call every plugin's registration hooks: declaring a modality,
    its data sets and its bundled adapters must not load torch or transformers (numpy may load)."""
    for command in ("plugins", "modalities"):
        code = f"from anymal_host.cli import main\ntry:\n    main([{command!r}])\nexcept SystemExit:\n    pass"
        loaded = _imported_after(code)
        assert not loaded["torch"] and not loaded["transformers"], f"anymal {command} imported torch/transformers"


def test_the_lazy_names_still_resolve():
    import anymal_host

    for name in anymal_host.__all__:
        assert getattr(anymal_host, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        anymal_host.Nope  # noqa: B018


def test_submodules_are_reachable_as_attributes():
    import anymal_host

    assert anymal_host.modality.Modality is anymal_host.Modality
    assert anymal_host.loading.build_adapter is not None
