"""``anymal serve``: the host behind OpenAI's Chat Completions API (see :mod:`anymal_host.serving`)."""

from __future__ import annotations

import click

from .serving.config import ServeConfig

__all__ = ["serve_command"]

_DEFAULTS = ServeConfig()


@click.command(name="serve")
@click.option("--host", "bind", default=_DEFAULTS.host, show_default=True,
              help="Address to bind. Anything but loopback needs --api-key.")
@click.option("--port", default=_DEFAULTS.port, show_default=True, help="TCP port.")
@click.option("--api-key", default=None, envvar="ANYMAL_API_KEY", show_envvar=True,
              help="Bearer key clients must send. Required off loopback, and for loading or unloading adapters.")
@click.option("--llm", default=None, help="LLM to serve: a Hub id or a local folder (default $ANYMAL_LLM or the "
              "embedded SmolLM2-135M-Instruct).")
@click.option("--adapter", "adapters", multiple=True, help="Adapter ref to load before serving (repeatable).")
@click.option("--max-batch-size", default=_DEFAULTS.max_batch_size, show_default=True,
              help="Requests answered in one LLM batch at most.")
@click.option("--batch-window-ms", default=_DEFAULTS.batch_window_ms, show_default=True,
              help="How long a batch waits for more requests after its first.")
@click.option("--max-queue", default=_DEFAULTS.max_queue, show_default=True,
              help="Requests waiting at most; more get 503 with Retry-After.")
@click.option("--max-body-mb", default=_DEFAULTS.max_body_bytes >> 20, show_default=True,
              help="Largest request body (and attachment) in MiB; larger get 413.")
@click.option("--request-timeout", default=_DEFAULTS.request_timeout_s, show_default=True,
              help="Seconds a request may take; longer get 504.")
@click.option("--allow-remote-urls", is_flag=True, help="Let image_url parts name http(s) URLs (the server fetches "
              "them). Off: data: URLs only.")
def serve_command(bind: str, port: int, api_key: str | None, llm: str | None, adapters: tuple[str, ...],
                  max_batch_size: int, batch_window_ms: float, max_queue: int, max_body_mb: int,
                  request_timeout: float, allow_remote_urls: bool) -> None:
    """Serve the host over OpenAI's Chat Completions API, so OpenAI clients work unchanged.

    \b
    Endpoints: POST /v1/chat/completions (stream: true for server-sent events), GET /v1/models,
    GET/POST /v1/adapters, DELETE /v1/adapters/NAME, GET /health, GET /metrics.
    Attachments are content parts: image_url (data: URLs), input_audio, and file (file_data + filename, any
    modality). Pick an adapter per request with extra_body={"anymal": {"adapters": {"image": "NAME"}}}.

    \b
    Example:
      anymal serve --port 8000
      python -c "from openai import OpenAI; c = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='-');
        print(c.chat.completions.create(model='default', messages=[{'role': 'user', 'content': 'Hi'}]))"
    """
    from .extras import require_extra

    require_extra("serve", "anymal serve")
    from .serving.app import run_server
    from .host import AnymalHost

    config = ServeConfig(host=bind, port=port, api_key=api_key or None, max_body_bytes=max_body_mb << 20,
                         max_batch_size=max_batch_size, batch_window_ms=batch_window_ms, max_queue=max_queue,
                         request_timeout_s=request_timeout, allow_remote_urls=allow_remote_urls)
    try:
        config.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    host = AnymalHost(llm)
    for ref in adapters:
        name = host.load_adapter(ref)
        click.echo(f"loaded adapter {name} from {ref}", err=True)
    click.echo(f"serving on http://{bind}:{port}/v1 (OpenAI Chat Completions)", err=True)
    run_server(host, config)
