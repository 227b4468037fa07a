"""``anymal serve``: one host behind OpenAI's Chat Completions API, so unmodified OpenAI clients work.

- :mod:`.config`: :class:`ServeConfig`, every server setting with its reason.
- :mod:`.parts`: OpenAI messages and content parts -> the host's messages and attachments.
- :mod:`.batcher`: concurrent requests gathered into LLM batches on one worker thread.
- :mod:`.app`: the FastAPI application (endpoints, auth, limits, errors, metrics).

FastAPI and uvicorn load only when a server is built (``pip install 'anymal[serve]'``).
"""

from __future__ import annotations

from .config import ServeConfig

__all__ = ["ServeConfig", "create_app", "run_server"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - forwarded as is
    """:func:`anymal_host.serving.app.create_app`, imported on first use (FastAPI loads then)."""
    from .app import create_app as create

    return create(*args, **kwargs)


def run_server(*args, **kwargs):  # noqa: ANN002, ANN003
    """:func:`anymal_host.serving.app.run_server`, imported on first use."""
    from .app import run_server as run

    return run(*args, **kwargs)
