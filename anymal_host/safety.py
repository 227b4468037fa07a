"""Running the safety hooks: a request refused by one of them ends with a :class:`Refusal` saying which check
of which plugin refused it and why.

The hooks are in :mod:`anymal_host.hookspecs` (``check_input_text``, ``check_input_signal``,
``check_output_text``, ``check_signals_and_output``). The host calls them for every request that generates an
answer (:meth:`AnymalHost.respond`, and ``generate`` / ``chat`` through it), in pluggy's order, and stops at the
first refusal. A check that raises refuses the request (fail closed): a broken safety plugin must not let
everything through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import AnymalError

__all__ = ["SAFETY_HOOKS", "Refusal", "ContentRefusedError", "run_check"]

#: The safety hooks, in the order a request meets them.
SAFETY_HOOKS = ("check_input_text", "check_input_signal", "check_output_text", "check_signals_and_output")


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused."""

    # the hook that refused: one of SAFETY_HOOKS
    check: str
    # the plugin whose implementation refused (its registered name)
    plugin: str
    # the reason it gave (or the error it raised), for the user
    reason: str

    def __str__(self) -> str:
        return f"refused by {self.check} of plugin {self.plugin!r}: {self.reason}"


class ContentRefusedError(AnymalError):
    """A safety check refused the request (``finish_reason: "content_filter"`` over the API)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def run_check(registry: Any, check: str, **arguments: Any) -> Refusal | None:
    """Call every implementation of the safety hook ``check`` in pluggy's order (``tryfirst`` first, then the
    later-registered plugin first); the first that returns a reason, or raises, refuses. Each implementation
    gets the arguments it names (pluggy's rule: a hookimpl may take fewer than the hookspec offers)."""
    hook = getattr(registry.pm.hook, check)
    for impl in reversed(hook.get_hookimpls()):
        try:
            verdict = impl.function(**{name: arguments[name] for name in impl.argnames})
        except Exception as exc:  # fail closed
            return Refusal(check, impl.plugin_name, f"the check failed ({type(exc).__name__}: {exc}), so the "
                                                    "request is refused; fix or remove the plugin")
        if verdict is not None:
            reason = str(verdict).strip() or "no reason given"
            return Refusal(check, impl.plugin_name, reason)
    return None
