"""Registers the built-in projectors ``linear``, ``mlp`` and ``perceiver``.

The factories import :mod:`anymal_host.projectors` (and so torch) when a projector is first built, not at
registration: registering is done by every ``anymal`` command, ``anymal --help`` included.
"""

from __future__ import annotations

from typing import Any, Callable

from anymal_host.hookspecs import hookimpl


def _deferred(class_name: str, token_mode: str) -> Callable[..., Any]:
    """A factory for ``anymal_host.projectors.<class_name>`` that imports it on first call; it carries the
    class's name and ``token_mode`` so listings and checks need no import."""
    def factory(in_dim: int, out_dim: int, num_tokens: int | None = None, **options: Any) -> Any:
        from anymal_host import projectors

        cls = getattr(projectors, class_name)
        return cls(in_dim, out_dim, num_tokens, **options) if num_tokens is not None else cls(in_dim, out_dim, **options)

    factory.__name__ = factory.__qualname__ = class_name
    factory.__doc__ = f"Build anymal_host.projectors.{class_name}(in_dim, out_dim, num_tokens, **options)."
    factory.token_mode = token_mode  # type: ignore[attr-defined]
    return factory


@hookimpl
def register_projectors(register):
    register("linear", _deferred("LinearProjector", "per_step"))
    register("mlp", _deferred("MLPProjector", "per_step"))
    register("perceiver", _deferred("PerceiverResampler", "fixed"))
