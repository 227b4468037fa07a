"""Registers the built-in projectors ``linear``, ``mlp`` and ``perceiver``."""

from anymal_host.hookspecs import hookimpl
from anymal_host.projectors import LinearProjector, MLPProjector, PerceiverResampler


@hookimpl
def register_projectors(register):
    register("linear", LinearProjector)
    register("mlp", MLPProjector)
    register("perceiver", PerceiverResampler)
