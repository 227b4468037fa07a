"""Registration through the host's plugin registry and the entry point."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import types

import pytest

import anymal_plugin_imu.plugin as imu_plugin
from anymal_host.errors import RegistrationError
from anymal_host.modality import DatasetSpec
from anymal_host.plugins import Registry
from anymal_plugin_imu import ImuModality


def _registry() -> Registry:
    registry = Registry()
    registry.add_plugin(imu_plugin, name="imu")
    return registry


def test_registers_the_modality_and_the_data_set():
    registry = _registry()
    modality = registry.modalities["imu"]
    assert isinstance(modality, ImuModality)
    assert modality.file_extensions == (".csv", ".npy")
    assert modality.media_types == ("text/csv", "application/x-npy")
    assert modality.signal_spec.sample_rate == 50 and modality.signal_spec.channels == 6
    assert registry.modality_for("walk.CSV") is modality
    assert registry.modality_for(media_type="application/x-npy") is modality
    spec = registry.dataset("imu:hapt")
    assert isinstance(spec, DatasetSpec) and spec.modality == "imu" and callable(spec.build)
    assert registry.provider("dataset", "imu:hapt") == "imu"
    assert not registry.plugins["imu"].errors


def test_no_bundled_adapters_registers_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(imu_plugin, "ADAPTERS_DIR", tmp_path / "missing")
    assert _registry().bundled_adapters == {}
    monkeypatch.setattr(imu_plugin, "ADAPTERS_DIR", tmp_path)
    assert _registry().bundled_adapters == {}


def test_bundled_adapter_folders_are_registered(tmp_path, monkeypatch):
    for name in ("imu-hapt-b", "imu-hapt-a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "anymal_adapter.json").write_text(json.dumps({"name": name, "modality": "imu"}))
    (tmp_path / "notes").mkdir()  # a folder without a package is not an adapter
    monkeypatch.setattr(imu_plugin, "ADAPTERS_DIR", tmp_path)
    assert _registry().bundled_adapters == {"imu-hapt-a": tmp_path / "imu-hapt-a", "imu-hapt-b": tmp_path / "imu-hapt-b"}


def test_a_second_imu_plugin_is_refused_by_name():
    registry = _registry()
    other = types.ModuleType("other_imu_plugin")
    other.register_modalities = imu_plugin.register_modalities
    registry.add_plugin(other, name="other")
    registry.modalities  # noqa: B018 - collecting runs the hooks
    # pluggy calls the later-registered plugin first, so the installed imu plugin is the one refused here;
    # either way exactly one registration stands and the error names both plugins
    errors = registry.plugins["other"].errors + registry.plugins["imu"].errors
    assert len(errors) == 1 and "modality 'imu'" in errors[0] and "'other'" in errors[0] and "'imu'" in errors[0]
    assert registry.provider("modality", "imu") in ("other", "imu")
    assert issubclass(RegistrationError, ValueError)


def test_entry_point_is_installed():
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="anymal")}
    if "imu" not in entry_points:
        pytest.skip("anymal-plugin-imu is not installed (pip install -e plugins/anymal-plugin-imu)")
    assert entry_points["imu"] == "anymal_plugin_imu.plugin"


def test_registration_is_cheap():
    # importing the plugin and registering must not read data or import the model code
    code = (
        "import sys; import anymal_plugin_imu.plugin as p; from anymal_host.plugins import Registry; "
        "r = Registry(); r.add_plugin(p, name='imu'); r.modalities; r.datasets; "
        "print(sorted(m for m in ('anymal_plugin_imu.hapt', 'anymal_plugin_imu.encoder') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
