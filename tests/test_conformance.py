"""The conformance kit over everything registered (after timm's ``tests/test_models.py``, which runs one suite
over everything ``list_models()`` returns): the default plugins, the toy test plugin and every installed
plugin (the IMU plugin among them), one test per registered thing and check.

Tests of the kit itself, showing that every rule can fail, are in ``test_conformance_kit.py``.
"""

from __future__ import annotations

import importlib.util

import pytest

from anymal_host import Registry
from anymal_host.testing import (
    check_bundled_adapter, check_dataset, check_encoder, check_modality, check_plugin, check_projector,
)

from . import toy_plugin

# Built once at collection, like timm's list_models(): what an `anymal` process with these plugins would see.
REGISTRY = Registry.from_environment(extra_plugins=[toy_plugin])


def _imu_data_missing() -> str | None:
    """Why ``imu:hapt`` cannot be built here (its data package is not installed), or None."""
    from anymal_plugin_imu import hapt

    return hapt.data_missing()


#: Data sets whose build needs data that may not be installed: name -> a function giving the reason, or None.
def _espeak_missing() -> str | None:
    import shutil

    return None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)"


NEEDS_DATA = {"imu:hapt": _imu_data_missing, "audio:speech": _espeak_missing}


def test_every_plugin_registers_without_errors():
    problems = {info.name: info.errors for info in REGISTRY.plugin_infos() if info.errors}
    assert not problems, f"plugins failed to register (see `anymal plugins`): {problems}"


@pytest.mark.skipif(importlib.util.find_spec("anymal_plugin_imu") is None, reason="anymal-plugin-imu is not installed")
def test_the_installed_imu_plugin_is_in_the_suite():
    assert "imu" in REGISTRY.modalities and "imu:hapt" in REGISTRY.datasets


@pytest.mark.parametrize("name", sorted(REGISTRY.modalities))
def test_modality(name):
    check_modality(REGISTRY.modalities[name])


@pytest.mark.parametrize("name", sorted(REGISTRY.modalities))
def test_encoder(name):
    check_encoder(REGISTRY.modalities[name])


@pytest.mark.parametrize("name", sorted(REGISTRY.projectors))
def test_projector(name):
    check_projector(REGISTRY.projectors[name])


@pytest.mark.parametrize("name", sorted(REGISTRY.datasets))
def test_dataset(name):
    reason = NEEDS_DATA.get(name, lambda: None)()
    if reason:
        pytest.skip(f"{name} needs data that is not installed: {reason}")
    spec = REGISTRY.datasets[name]
    check_dataset(spec, modality=REGISTRY.modality(spec.modality))


@pytest.mark.parametrize("name", sorted(REGISTRY.bundled_adapters))
def test_bundled_adapter(name):
    check_bundled_adapter(REGISTRY.bundled_adapters[name], REGISTRY, name=name)


@pytest.mark.parametrize("options", [{"hidden_dim": 32}, {"depth": 1, "heads": 2, "dim": 8, "max_steps": 16}],
                         ids=["mlp-hidden_dim", "perceiver-small"])
def test_built_in_projectors_conform_with_their_options(options):
    name = "mlp" if "hidden_dim" in options else "perceiver"
    check_projector(REGISTRY.projectors[name], in_dim=8, out_dim=16, num_tokens=3, **options)


def test_the_toy_plugin_passes_check_plugin():
    """What a third party's test looks like: one call on the plugin module."""
    check_plugin(toy_plugin)


def test_the_default_plugins_pass_check_plugin():
    check_plugin()
