"""Test helpers for the host and for plugins: tiny offline models and the conformance kit.

Only tests import this package; ``import anymal_host`` never does.

- :mod:`._tiny`: ``tiny_llm()`` and ``tiny_tokenizer()``, a 2-layer LLaMA and a BPE tokenizer built from
  configs (no network, no weights on disk).
- :mod:`._conformance`: the contract every plugin passes (after timm's ``tests/test_models.py``, which runs
  one suite over everything ``list_models()`` returns): ``check_modality``, ``check_encoder``,
  ``check_projector``, ``check_dataset``, ``check_bundled_adapter``, ``check_plugin`` and ``registry_with``.
  A broken rule raises :class:`ConformanceError` naming the thing, the rule and the fix.

A plugin's own test is one line::

    from anymal_host.testing import check_plugin
    import my_plugin

    def test_conformance():
        check_plugin(my_plugin)
"""

from ._conformance import (
    RULES,
    ConformanceError,
    check_bundled_adapter,
    check_dataset,
    check_encoder,
    check_modality,
    check_plugin,
    check_projector,
    registry_with,
)
from ._tiny import tiny_llm, tiny_tokenizer

__all__ = [
    "tiny_llm",
    "tiny_tokenizer",
    "registry_with",
    "check_modality",
    "check_encoder",
    "check_projector",
    "check_dataset",
    "check_bundled_adapter",
    "check_plugin",
    "ConformanceError",
    "RULES",
]
