"""The plugin system: discovery, validation, isolation of broken plugins, ANYMAL_LOAD_PLUGINS."""

import sys
import textwrap

import pytest

from anymal_host import Registry, RegistrationError, UnknownModalityError, UnsupportedAttachmentError, hookimpl

from . import toy_plugin


def make_distribution(tmp_path, monkeypatch, dist: str, module: str, source: str) -> None:
    """Install a real plugin distribution into a folder on sys.path: a module + a dist-info with an entry point."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[anymal]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


GOOD_PLUGIN = """
    from anymal_host import hookimpl
    from anymal_host.projectors import LinearProjector

    @hookimpl
    def register_projectors(register):
        register("good-linear", LinearProjector)
"""


def test_default_projectors_are_registered_as_a_default_plugin(registry):
    assert {"linear", "mlp", "perceiver"} <= set(registry.projectors)
    assert registry.provider("projector", "perceiver") == "anymal_host.default_plugins.projectors"
    default = [p for p in registry.plugin_infos() if p.default]
    assert default and default[0].registered["projector"] == ["linear", "mlp", "perceiver"]


def test_test_plugin_adds_modality_projector_and_dataset(registry):
    assert registry.modality("toy").file_extensions == (".toy",)
    assert "meanpool" in registry.projectors
    assert registry.dataset("toy:ramps").modality == "toy"
    assert registry.provider("modality", "toy") == toy_plugin.__name__


def test_entry_point_plugin_is_discovered_with_its_version(tmp_path, monkeypatch):
    make_distribution(tmp_path, monkeypatch, "anymal-plugin-good", "anymal_good_plugin", GOOD_PLUGIN)
    monkeypatch.delenv("ANYMAL_LOAD_PLUGINS", raising=False)
    registry = Registry.from_environment()
    assert "good-linear" in registry.projectors
    info = registry.plugins["anymal_good_plugin"]
    assert info.version == "1.2.3" and info.distribution == "anymal-plugin-good" and info.hooks == ["register_projectors"]


def test_plugin_that_raises_at_import_is_reported_and_others_work(tmp_path, monkeypatch):
    make_distribution(tmp_path, monkeypatch, "anymal-plugin-broken", "anymal_broken_plugin",
                      "raise RuntimeError('missing native library libfoo.so')\n")
    monkeypatch.delenv("ANYMAL_LOAD_PLUGINS", raising=False)
    registry = Registry.from_environment(extra_plugins=[toy_plugin])
    errors = registry.plugins["anymal_broken_plugin"].errors
    assert len(errors) == 1
    assert "failed to import" in errors[0] and "libfoo.so" in errors[0] and "anymal-plugin-broken" in errors[0]
    assert "toy" in registry.modalities and "perceiver" in registry.projectors


def test_plugin_whose_hook_raises_is_isolated(registry):
    class Exploding:
        @hookimpl
        def register_modalities(self, register):
            raise RuntimeError("boom while registering")

    registry.add_plugin(Exploding(), name="exploding")
    assert "toy" in registry.modalities
    assert "boom while registering" in registry.plugins["exploding"].errors[0]


def test_duplicate_name_is_refused_naming_both_plugins(registry):
    class Copycat:
        @hookimpl
        def register_projectors(self, register):
            register("perceiver", toy_plugin.MeanPoolProjector)
            register("copycat-only", toy_plugin.MeanPoolProjector)

    registry.add_plugin(Copycat(), name="copycat")
    projectors = registry.projectors
    error = registry.plugins["copycat"].errors[0]
    assert "'perceiver'" in error and "'copycat'" in error and "anymal_host.default_plugins.projectors" in error
    # a built-in name is never taken over (pluggy calls the later-registered copycat first); the copycat's other
    # projector is its own and stays
    assert projectors["perceiver"].__name__ == "PerceiverResampler" and "copycat-only" in projectors
    assert registry.provider("projector", "perceiver") == "anymal_host.default_plugins.projectors"
    assert "perceiver" not in registry.plugins["copycat"].registered["projector"]


@pytest.mark.parametrize("bad, message", [
    (lambda r: r("not a modality"), "pass an instance of anymal_host.Modality"),
])
def test_register_validates_what_it_is_given(registry, bad, message):
    class Bad:
        @hookimpl
        def register_modalities(self, register):
            bad(register)

    registry.add_plugin(Bad(), name="bad")
    registry.modalities
    assert message in registry.plugins["bad"].errors[0]


def test_anymal_load_plugins_limits_entry_points(tmp_path, monkeypatch):
    make_distribution(tmp_path, monkeypatch, "anymal-plugin-good", "anymal_good_plugin", GOOD_PLUGIN)
    monkeypatch.setenv("ANYMAL_LOAD_PLUGINS", "")
    assert "good-linear" not in Registry.from_environment().projectors
    monkeypatch.setenv("ANYMAL_LOAD_PLUGINS", "anymal-plugin-good")
    assert "good-linear" in Registry.from_environment().projectors


def test_unknown_modality_names_the_plugin_to_install(registry):
    with pytest.raises(UnknownModalityError, match=r"unknown modality 'smell'.*pip install anymal-plugin-smell"):
        registry.modality("smell")


def test_attachment_of_unknown_type_names_the_plugin_to_install(registry):
    with pytest.raises(UnsupportedAttachmentError, match=r"no installed modality accepts file 'cat.png'.*anymal-plugin-image"):
        registry.modality_for("cat.png")
    with pytest.raises(UnsupportedAttachmentError, match="no installed modality accepts file 'notes.xyz'"):
        registry.modality_for("notes.xyz")
    assert registry.modality_for("signal.toy").name == "toy"
    assert registry.modality_for(media_type="application/x-toy").name == "toy"


def test_bundled_adapter_registration_checks_the_folder(registry, tmp_path):
    package = tmp_path / "toy-adapter"
    package.mkdir()
    (package / "anymal_adapter.json").write_text('{"modality": "toy"}')

    class Bundler:
        @hookimpl
        def register_adapters(self, register):
            register("toy-bundled", package)
            register("not-a-package", tmp_path)

    registry.add_plugin(Bundler(), name="bundler")
    assert registry.bundled_adapters == {"toy-bundled": package}
    assert registry.provider("adapter", "toy-bundled") == "bundler"
    assert "has no anymal_adapter.json" in registry.plugins["bundler"].errors[0]


def test_dataset_name_must_match_its_modality(registry):
    from anymal_host import DatasetSpec

    class Mislabelled:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec(name="imu:ramps", modality="toy", build=lambda split: []))

    registry.add_plugin(Mislabelled(), name="mislabelled")
    assert "imu:ramps" not in registry.datasets
    assert "name it 'toy:ramps'" in registry.plugins["mislabelled"].errors[0]


def test_load_plugins_name_that_matches_nothing_is_reported(monkeypatch):
    monkeypatch.setenv("ANYMAL_LOAD_PLUGINS", "anymal-plugin-smell")
    registry = Registry.from_environment()
    assert any("'anymal-plugin-smell'" in w and "no installed plugin" in w for w in registry.warnings)


def test_hooks_run_in_pluggy_order_tryfirst_first_trylast_last(registry):
    """Hooks are called in pluggy's own order: tryfirst, then later-registered before earlier, then trylast."""
    calls: list[str] = []

    def plugin(label: str, **marks):
        class P:
            @hookimpl(**marks)
            def register_datasets(self, register):
                calls.append(label)
        return P()

    registry.add_plugin(plugin("last", trylast=True), name="last")
    registry.add_plugin(plugin("first", tryfirst=True), name="first")
    registry.add_plugin(plugin("plain-a"), name="plain-a")
    registry.add_plugin(plugin("plain-b"), name="plain-b")
    registry.datasets
    assert calls[0] == "first" and calls[-1] == "last"
    assert calls.index("plain-b") < calls.index("plain-a")  # pluggy: later-registered runs first


def test_tryfirst_plugin_wins_a_name_clash_between_third_parties(registry):
    def plugin(factory, **marks):
        class P:
            @hookimpl(**marks)
            def register_projectors(self, register):
                register("shared-name", factory)
        return P()

    registry.add_plugin(plugin(toy_plugin.MeanPoolProjector, tryfirst=True), name="eager")
    registry.add_plugin(plugin(dict), name="plain")
    assert registry.projectors["shared-name"] is toy_plugin.MeanPoolProjector
    assert "already registered by plugin 'eager'" in registry.plugins["plain"].errors[0]


@pytest.mark.parametrize("marks", [{"wrapper": True}, {"hookwrapper": True}])
def test_hook_wrappers_are_refused_with_a_clear_message(registry, marks):
    class Wrapper:
        @hookimpl(**marks)
        def register_modalities(self, register):
            yield

    registry.add_plugin(Wrapper(), name="wrapper")
    assert "toy" in registry.modalities  # everything else still registers
    [error] = registry.plugins["wrapper"].errors
    assert "hook wrappers" in error and "not supported" in error and "tryfirst" in error


def test_a_raising_plugin_is_reported_and_later_plugins_still_register(registry):
    class Broken:
        @hookimpl(tryfirst=True)
        def register_modalities(self, register):
            raise RuntimeError("boom")

    registry.add_plugin(Broken(), name="broken")
    assert "toy" in registry.modalities
    assert "register_modalities raised RuntimeError: boom" in registry.plugins["broken"].errors[0]


def test_a_hook_that_queries_the_registry_is_reported_and_the_rest_still_register(registry):
    class Nosy:
        @hookimpl
        def register_datasets(self, register):
            registry.modalities  # noqa: B018  (looks up what is still being built)

    registry.add_plugin(Nosy(), name="nosy")
    assert "toy" in registry.modalities and "toy:ramps" in registry.datasets
    assert "queried the registry" in registry.plugins["nosy"].errors[0]
