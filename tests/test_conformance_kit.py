"""The conformance kit itself: every rule in ``RULES`` fails on a thing built to break it, with a message that
names the thing, the rule and a fix; the kit leaves the caller's RNG and environment alone; and
``docs/reference.md`` documents every kit function and rule.

The broken things are small variations of the toy plugin's, each breaking one rule.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

import anymal_host.testing as kit
from anymal_host import DatasetSpec, InvalidSignalError, hookimpl
from anymal_host.projectors import LinearProjector
from anymal_host.testing import (
    RULES, ConformanceError, check_dataset, check_encoder, check_modality, check_plugin, check_projector,
    registry_with,
)

from .test_docs import _arguments
from .toy_plugin import MeanPoolProjector, ToyEncoder, ToyModality, _toy_dataset

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"


# ----- broken modalities ----------------------------------------------------------------------------------


class NamedBadly(ToyModality):
    name = "not an identifier"


class UpperCaseExtension(ToyModality):
    file_extensions = (".TOY",)


class BadExample(ToyModality):
    def example_input(self) -> Any:
        return np.zeros(3, dtype=np.float32)  # [3], not [T, 2]: load refuses its own example


class StrictOptions(ToyModality):
    def load(self, source: Any, scale: float = 1.0) -> torch.Tensor:  # type: ignore[override]
        return super().load(source)


class NoisyPreprocess(ToyModality):
    def preprocess(self, signal: torch.Tensor, **options: Any) -> torch.Tensor:
        return signal + torch.rand_like(signal)


class WrongChannels(ToyModality):
    signal_spec = ToyModality.signal_spec.__class__(channels=3)


class UnmaskedCollate(ToyModality):
    def collate(self, items):
        batch, mask = super().collate(items)
        return batch, torch.ones_like(mask)


class AcceptsNaN(ToyModality):
    def load(self, source: Any, **options: Any) -> torch.Tensor:
        if isinstance(source, np.ndarray) and source.ndim == 2 and source.shape[0] and np.isnan(source).all():
            return torch.as_tensor(source)
        return super().load(source)


class SilentRefusal(ToyModality):
    def load(self, source: Any, **options: Any) -> torch.Tensor:
        try:
            return super().load(source)
        except InvalidSignalError:
            raise InvalidSignalError("") from None


class CrashesOnBytes(ToyModality):
    def load(self, source: Any, **options: Any) -> torch.Tensor:
        if isinstance(source, bytes):
            raise UnicodeDecodeError("utf-8", source, 0, 1, "invalid start byte")
        return super().load(source)


# ----- broken encoders ------------------------------------------------------------------------------------


class WithEncoder(ToyModality):
    """The toy modality with another encoder class."""

    encoder_class: type[nn.Module] = ToyEncoder

    def build_encoder(self, config):
        return self.encoder_class(**config)


def with_encoder(cls: type[nn.Module]) -> ToyModality:
    return type(f"With{cls.__name__}", (WithEncoder,), {"encoder_class": cls})()


class PlainModule(nn.Module):
    """Not an anymal_host.Encoder."""

    feature_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(2, 8)

    def forward(self, signals, mask):
        return self.proj(signals) * mask.unsqueeze(-1), mask


class UnseededWeights(ToyEncoder):
    builds = 0

    def __init__(self) -> None:
        super().__init__()
        UnseededWeights.builds += 1
        with torch.no_grad():
            self.proj.bias.fill_(UnseededWeights.builds)  # differs from build to build


class FailsOnMeta(ToyEncoder):
    def __init__(self) -> None:
        if torch.empty(0).device.type == "meta":
            raise ValueError("cannot build here")
        super().__init__()


class UnsupportedOnMeta(ToyEncoder):
    def __init__(self) -> None:
        if torch.empty(0).device.type == "meta":
            raise NotImplementedError("no meta build")  # allowed: the host builds it for real
        super().__init__()


class OtherLayoutOnMeta(ToyEncoder):
    def __init__(self) -> None:
        super().__init__()
        if torch.empty(0).device.type == "meta":
            self.register_buffer("extra", torch.zeros(1))


class TextFeatureDim(ToyEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.feature_dim = "8"  # type: ignore[assignment]


class WrongWidth(ToyEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.feature_dim = 4


class MixesPadding(ToyEncoder):
    def forward(self, signals, mask):
        features, mask = super().forward(signals, mask)
        return (features - features.mean(dim=1, keepdim=True)) * mask.unsqueeze(-1), mask  # the mean counts padding


class PaddingNotZero(ToyEncoder):
    def forward(self, signals, mask):
        return torch.tanh(self.proj(signals)), mask  # tanh(bias) at padded steps


class NoisyInEval(ToyEncoder):
    def forward(self, signals, mask):
        features, mask = super().forward(signals, mask)
        return (features + 1e-3 * torch.rand_like(features)) * mask.unsqueeze(-1), mask


# ----- broken projectors ----------------------------------------------------------------------------------


class NoParameters(nn.Module):
    token_mode = "per_step"

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int | None = None) -> None:
        super().__init__()

    def forward(self, features, mask):
        return features, mask


class TooWide(LinearProjector):
    def forward(self, features, mask):
        tokens, mask = super().forward(features, mask)
        return torch.cat([tokens, tokens[..., :1]], dim=-1), mask


class ClaimsFixed(LinearProjector):
    token_mode = "fixed"


class UnknownMode(LinearProjector):
    token_mode = "dynamic"


class NoModeVariableCount(LinearProjector):
    """No token_mode, and neither rule: one token per two steps."""

    token_mode = None

    def forward(self, features, mask):
        return self.proj(features[:, ::2]), mask[:, ::2]


class MeanCountsPadding(MeanPoolProjector):
    def forward(self, features, mask):
        tokens = self.heads(features.mean(1)).view(features.shape[0], self.num_tokens, self.out_dim)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool)


class NoisyProjector(LinearProjector):
    def forward(self, features, mask):
        return self.proj(features) + torch.rand(1), mask


class UnusedParameter(LinearProjector):
    def __init__(self, in_dim: int, out_dim: int, num_tokens: int | None = None) -> None:
        super().__init__(in_dim, out_dim, num_tokens)
        self.unused = nn.Parameter(torch.zeros(3))


class DetachedTokens(LinearProjector):
    def forward(self, features, mask):
        return self.proj(features).detach() + 0 * features.sum(), mask


# ----- broken data sets -----------------------------------------------------------------------------------


def spec(**changes: Any) -> DatasetSpec:
    """The toy ramps data set, with ``changes``."""
    fields = dict(name="toy:ramps", modality="toy", build=_toy_dataset, labels=("rising", "falling"))
    return DatasetSpec(**{**fields, **changes})


def items_with(**changes: Any) -> Callable[..., list[dict[str, Any]]]:
    """A build whose items carry ``changes`` (a value, or a function of the item)."""
    def build(split: str, **options: Any) -> list[dict[str, Any]]:
        return [{**item, **{k: v(item) if callable(v) else v for k, v in changes.items()}}
                for item in _toy_dataset(split)]
    return build


def only_train(split: str, **options: Any) -> list[dict[str, Any]]:
    return _toy_dataset("train") if split == "train" else _toy_dataset({"val": "oops"}[split])


class OtherToy(ToyModality):
    name = "other"


# ----- broken plugins -------------------------------------------------------------------------------------


class RaisingPlugin:
    @hookimpl
    def register_modalities(self, register):
        raise RuntimeError("boom")


def adapter_plugin(folder: Path) -> Any:
    class BundlesAdapter:
        @hookimpl
        def register_modalities(self, register):
            register(ToyModality())

        @hookimpl
        def register_adapters(self, register):
            register("toy-broken", folder)
    return BundlesAdapter()


def broken_package(tmp_path: Path) -> Path:
    folder = tmp_path / "toy-broken"
    folder.mkdir()
    (folder / "anymal_adapter.json").write_text('{"name": "toy-broken"}')
    return folder


# ----- the cases: one or more per rule --------------------------------------------------------------------

CASES = [
    ("modality-type", lambda: check_modality(object())),  # type: ignore[arg-type]
    ("modality-type", lambda: check_modality(NamedBadly())),
    ("accepts", lambda: check_modality(UpperCaseExtension())),
    ("load-example", lambda: check_modality(BadExample())),
    ("unknown-options", lambda: check_modality(StrictOptions())),
    ("preprocess", lambda: check_modality(NoisyPreprocess())),
    ("preprocess", lambda: check_modality(WrongChannels())),
    ("collate", lambda: check_modality(UnmaskedCollate())),
    ("bad-input", lambda: check_modality(AcceptsNaN())),
    ("bad-input", lambda: check_modality(SilentRefusal())),
    ("bad-input", lambda: check_modality(CrashesOnBytes())),
    ("bad-input", lambda: check_modality(ToyModality(), bad_inputs=[np.zeros((4, 2), dtype=np.float32)])),
    ("encoder-build", lambda: check_encoder(with_encoder(PlainModule))),
    ("encoder-build", lambda: check_encoder(with_encoder(UnseededWeights))),
    ("encoder-build", lambda: check_encoder(ToyModality(), {"width": "wide"})),
    ("meta-build", lambda: check_encoder(with_encoder(FailsOnMeta))),
    ("meta-build", lambda: check_encoder(with_encoder(OtherLayoutOnMeta))),
    ("feature-dim", lambda: check_encoder(with_encoder(TextFeatureDim))),
    ("encoder-output", lambda: check_encoder(with_encoder(WrongWidth))),
    ("padding-invariance", lambda: check_encoder(with_encoder(MixesPadding))),
    ("padded-zeros", lambda: check_encoder(with_encoder(PaddingNotZero))),
    ("determinism", lambda: check_encoder(with_encoder(NoisyInEval))),
    ("projector-build", lambda: check_projector(NoParameters)),
    ("projector-build", lambda: check_projector(MeanPoolProjector, bias=False)),  # an option it does not take
    ("projector-output", lambda: check_projector(TooWide)),
    ("token-mode", lambda: check_projector(ClaimsFixed)),
    ("token-mode", lambda: check_projector(UnknownMode)),
    ("token-mode", lambda: check_projector(NoModeVariableCount)),
    ("padding-invariance", lambda: check_projector(MeanCountsPadding)),
    ("determinism", lambda: check_projector(NoisyProjector)),
    ("gradients", lambda: check_projector(UnusedParameter)),
    ("gradients", lambda: check_projector(DetachedTokens)),
    ("dataset-name", lambda: check_dataset(spec(name="ramps"))),
    ("dataset-name", lambda: check_dataset(object())),  # type: ignore[arg-type]
    ("dataset-modality", lambda: check_dataset(spec(), modality=OtherToy())),
    ("dataset-build", lambda: check_dataset(spec(build=only_train))),
    ("dataset-build", lambda: check_dataset(spec(build=lambda split, **o: []))),
    ("dataset-item", lambda: check_dataset(spec(build=items_with(caption=" ")))),
    ("dataset-item", lambda: check_dataset(spec(build=items_with(signal=lambda item: item["signal"].long())))),
    ("dataset-collate", lambda: check_dataset(spec(build=items_with(signal=torch.zeros(12, 3))), modality=ToyModality())),
    ("dataset-labels", lambda: check_dataset(spec(labels=("rising", "rising", "falling")))),
    ("dataset-labels", lambda: check_dataset(spec(labels=("up", "down")))),
    ("dataset-parse-label", lambda: check_dataset(spec(build=items_with(caption="It rises.")))),
    ("dataset-parse-label", lambda: check_dataset(spec(parse_label=lambda text: "rising"))),
    ("dataset-questions", lambda: check_dataset(spec(questions=("What is it?", "")))),
    ("plugin-registers", lambda: check_plugin(RaisingPlugin())),
    ("dataset-modality", lambda: check_plugin(types.SimpleNamespace(register_datasets=hookimpl(
        lambda register: register(spec(name="other:ramps", modality="other")))))),
]


@pytest.mark.parametrize("rule, call", CASES, ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(CASES)])
def test_each_rule_can_fail(rule, call):
    with pytest.raises(ConformanceError) as info:
        call()
    error = info.value
    assert error.rule == rule, str(error)
    assert f"rule {rule!r}" in str(error) and "Fix: " in str(error) and error.subject in str(error)


def test_a_broken_bundled_adapter_fails(tmp_path):
    with pytest.raises(ConformanceError) as info:
        check_plugin(adapter_plugin(broken_package(tmp_path)))
    assert info.value.rule == "adapter-package" and "toy-broken" in str(info.value)


def test_every_rule_has_a_failing_case():
    covered = {rule for rule, _ in CASES} | {"adapter-package"}
    assert covered == set(RULES), f"rules without a case that breaks them: {sorted(set(RULES) - covered)}"


def test_check_plugin_names_the_plugin_and_the_thing():
    with pytest.raises(ConformanceError, match=r"plugin 'RaisingPlugin'.*register_modalities raised RuntimeError"):
        check_plugin(RaisingPlugin())
    bad = types.SimpleNamespace(register_projectors=hookimpl(lambda register: register("wide", TooWide)))
    with pytest.raises(ConformanceError, match=r"^plugin 'SimpleNamespace': projector 'wide' breaks conformance rule"):
        check_plugin(bad)


def test_check_plugin_skips_what_it_is_told_and_refuses_unknown_names():
    plugin = types.SimpleNamespace(register_projectors=hookimpl(lambda register: register("wide", TooWide)))
    check_plugin(plugin, skip=["wide"])
    with pytest.raises(ValueError, match="skip names \\['nope'\\]"):
        check_plugin(plugin, skip=["nope"])


def test_the_checks_that_pass_allow_a_meta_build_the_host_falls_back_from():
    check_encoder(with_encoder(UnsupportedOnMeta))


def test_the_kit_leaves_the_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_modality(ToyModality())
    check_encoder(ToyModality())
    check_projector(MeanPoolProjector)
    check_dataset(spec(), modality=ToyModality())
    assert torch.equal(torch.rand(3), expected)


def test_registry_with_loads_no_installed_plugin(monkeypatch):
    monkeypatch.delenv("ANYMAL_LOAD_PLUGINS", raising=False)  # would load every installed plugin
    registry = registry_with()
    assert set(registry.modalities) == set() and {"linear", "mlp", "perceiver"} <= set(registry.projectors)
    registry = registry_with(RaisingPlugin())
    from anymal_host.default_plugins import DEFAULT_PLUGINS

    # the defaults (projectors, safety checks), then the plugin
    assert [info.errors != [] for info in registry.plugin_infos()] == [False] * len(DEFAULT_PLUGINS) + [True]


def _testing_section() -> str:
    text = REFERENCE.read_text(encoding="utf-8")
    return text.split("\n## anymal_host.testing\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("name", [n for n in kit.__all__ if callable(getattr(kit, n)) and n != "ConformanceError"])
def test_every_kit_function_is_documented_with_its_arguments(name):
    heading = f"### {name}({_arguments(getattr(kit, name))})"
    assert heading in _testing_section(), f"docs/reference.md: add '{heading}' under '## anymal_host.testing'"


def test_every_rule_is_documented():
    rows = set(re.findall(r"^\| `([a-z-]+)` \|", _testing_section(), flags=re.M))
    assert rows == set(RULES), f"rules table: missing {sorted(set(RULES) - rows)}, stale {sorted(rows - set(RULES))}"
