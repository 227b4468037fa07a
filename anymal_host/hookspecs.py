"""The hooks a modality plugin implements.

Every hook receives a ``register`` callback (the pattern of simonw/llm): the plugin calls it once per
thing it contributes, and the host validates each call, refuses duplicate names with an error that names
both plugins, and records which plugin registered what. A plugin implements only the hooks it needs::

    from anymal_host import hookimpl

    @hookimpl
    def register_modalities(register):
        register(MyModality())

Hooks are called once per process, lazily, the first time the registry is needed. Implementations must be
cheap: no model weights or data sets are loaded at registration time, only descriptions of them.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

__all__ = ["hookspec", "hookimpl"]

PROJECT_NAME = "anymal"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_modalities(register: Callable[[Any], None]) -> None:
    """Register the modalities (senses) this plugin provides.

    :param register: call ``register(modality)`` once per modality, where ``modality`` is an instance of
        :class:`anymal_host.Modality`. Its ``name`` must be unique across all installed plugins; a second
        registration of the same name raises :class:`anymal_host.errors.RegistrationError` naming both
        plugins.

    The return value is ignored.
    """


@hookspec
def register_projectors(register: Callable[..., None]) -> None:
    """Register projector types: modules that map encoder features into the LLM's embedding space.

    :param register: call ``register(name, factory)``. ``factory(in_dim, out_dim, num_tokens, **options)``
        must return a :class:`torch.nn.Module` whose ``forward(features, mask)`` takes features
        ``[B, T, in_dim]`` with a boolean mask ``[B, T]`` (True = real step) and returns
        ``(tokens [B, N, out_dim], token_mask [B, N])``. The built-in ``linear``, ``mlp`` and
        ``perceiver`` are registered through this same hook by a default plugin.

    The return value is ignored.
    """


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Register data sets that training and evaluation can build by name.

    :param register: call ``register(spec)`` with an :class:`anymal_host.DatasetSpec`. Its ``name`` is
        written ``modality:name`` (for example ``imu:hapt``) and must be unique; ``spec.build(split)`` is
        only called when a training or evaluation run asks for the data set.

    The return value is ignored.
    """


@hookspec
def register_adapters(register: Callable[..., None]) -> None:
    """Register trained adapter packages that ship inside the plugin's distribution.

    :param register: call ``register(name, path)`` where ``path`` is the folder of an adapter package
        (``anymal_adapter.json`` + ``adapter.safetensors``) inside the installed plugin. ``name`` must be
        unique. The host loads a bundled adapter only when a request needs its modality and no other adapter
        for that modality is loaded, after the same compatibility checks as any other adapter.

    The return value is ignored.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``anymal`` command line.

    :param cli: the root :class:`click.Group`; add commands with ``@cli.command()`` or
        ``cli.add_command(...)``. A name that already exists is refused with an error naming both plugins.

    The return value is ignored.
    """


# Safety hooks (input text, each input signal, output text, the (signals, output) pair) will be added here,
# documented to the same standard, when the safety-check work lands. The data path in docs/architecture.md
# marks where the host calls them.
