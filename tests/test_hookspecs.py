"""Meta-test: every hook is documented to pytest's standard and exercised by a test."""

import inspect
from pathlib import Path

import pytest

from anymal_host import hookspecs

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "anymal_spec")]
TESTS = Path(__file__).parent


def test_there_are_hooks():
    assert set(HOOKS) >= {"register_modalities", "register_projectors", "register_datasets", "register_adapters",
                          "register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc.splitlines()[0]) > 20, f"{hook}: first line must say what the hook is for"
    for parameter in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f":param {parameter}:" in doc, f"{hook}: document the argument {parameter!r}"
    assert "return value" in doc.lower(), f"{hook}: say what the return value means"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    test_sources = [p.read_text() for p in TESTS.rglob("*.py") if p.name != Path(__file__).name]
    assert any(f"def {hook}(" in source for source in test_sources), \
        f"no test implements {hook}: add one that registers through it"
