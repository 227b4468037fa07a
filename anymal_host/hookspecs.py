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


# ----- safety checks ----------------------------------------------------------------------------------------
# Called for every request that generates an answer (AnymalHost.generate / respond / chat, the CLI, a server),
# never at registration. Each returns None to let the request go on, or a reason to refuse it. The host calls
# the implementations in pluggy's order and stops at the first refusal; a check that raises refuses the request
# (fail closed), with the error in the reason. A refusal ends the request with that reason:
# ContentRefusedError in Python, finish_reason "content_filter" over the API.


@hookspec(firstresult=True)
def check_input_text(text: str) -> str | None:
    """Check the text of a request before anything of it is encoded or generated.

    :param text: every text part of the request's messages (system, user and earlier assistant turns), in
        order, joined by newlines. Attachments are not in it: :func:`check_input_signal` sees them.
    The return value is ``None`` to let the request go on, or a reason a user can read (one sentence) to
    refuse it.
    """


@hookspec(firstresult=True)
def check_input_signal(modality: str, signal: Any) -> str | None:
    """Check one attachment of a request, after its modality's ``load`` and ``preprocess``, before its encoder
    sees it. Called once per attachment, in the order the attachments stand in the messages.

    :param modality: the attachment's modality name (``"image"``, ``"imu"``...).
    :param signal: the preprocessed signal as the encoder gets it, a :class:`torch.Tensor` of one item
        (``[T, ...]``, no batch axis), for example ``[1, 3, 224, 224]`` for an image.
    The return value is ``None`` to let the request go on, or a reason to refuse it.
    """


@hookspec(firstresult=True)
def check_output_text(text: str) -> str | None:
    """Check a generated answer before it is returned.

    :param text: the whole answer, as the caller would receive it.
    The return value is ``None`` to return the answer, or a reason to withhold it (the request is refused
    instead).
    """


@hookspec(firstresult=True)
def check_signals_and_output(signals: Any, text: str) -> str | None:
    """Check a generated answer against the request's attachments (AnyMAL checks the pair: an answer can be
    harmless as text and wrong about what the signal shows). Called after :func:`check_output_text` lets the
    answer through, also for requests without attachments.

    :param signals: the request's attachments as ``(modality, signal)`` pairs, in order, each signal as
        :func:`check_input_signal` saw it; an empty list when there are none.
    :param text: the generated answer.
    The return value is ``None`` to return the answer, or a reason to withhold it.
    """
