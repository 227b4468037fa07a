"""``anymal logs``: read the SQLite log of ``anymal chat`` (:mod:`anymal_host.logs`), find its file, turn it
on and off."""

from __future__ import annotations

import json

import click

__all__ = ["logs_group"]


@click.group(name="logs", invoke_without_command=True)
@click.option("-n", "--count", default=3, show_default=True, type=click.IntRange(0),
              help="How many of the most recent responses to show (0: all).")
@click.option("-c", "--current", is_flag=True, help="Only the most recent conversation.")
@click.option("--cid", default=None, help="Only the conversation with this id.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: one object per response with id, conversation_id, llm, system, prompt, "
                   "attachments [{path, sha256, modality}], adapters, options, response, finish_reason, "
                   "prompt_tokens, completion_tokens, duration_ms, datetime_utc.")
@click.pass_context
def logs_group(ctx: click.Context, count: int, current: bool, cid: str | None, as_json: bool) -> None:
    """Show the prompts and answers `anymal chat` logged, most recent last.

    \b
    anymal logs              the last 3 responses
    anymal logs -n 0 --json  every response, as JSON
    anymal logs -c           the latest conversation (continue it with `anymal chat -c`)
    anymal logs path | status | on | off

    Same as anymal_host.logs.LogStore().latest(count) in Python.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .logs import LogStore, logs_path

    if not logs_path().exists():
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"Nothing logged yet ({logs_path()} does not exist).")
        return
    with LogStore() as store:
        if current:
            cid = store.latest_conversation_id()
        responses = store.latest(count, cid) if (cid or not current) else []
    if as_json:
        click.echo(json.dumps([r.to_json() for r in responses], indent=2))
        return
    if not responses:
        click.echo("No logged responses" + (f" in conversation {cid}." if cid else "."))
        return
    for response in responses:
        click.echo(click.style(f"# {response.datetime_utc}  conversation {response.conversation_id}", bold=True))
        click.echo(f"llm: {response.llm}" + (f"  adapters: {', '.join(f'{m}={a}' for m, a in response.adapters.items())}"
                                             if response.adapters else ""))
        if response.system:
            click.echo(f"system: {response.system}")
        for attachment in response.attachments:
            click.echo(f"attachment: {attachment.path}")
        click.echo(f"prompt: {response.prompt}")
        if response.finish_reason == "content_filter":
            click.echo("response: (refused by a safety check)")
        else:
            click.echo(f"response: {response.response}")
        click.echo()


@logs_group.command(name="path")
def logs_path_command() -> None:
    """Print the log database's path ($ANYMAL_LOGS_PATH, else $ANYMAL_HOME/logs.db)."""
    from .logs import logs_path

    click.echo(str(logs_path()))


@logs_group.command(name="status")
def logs_status() -> None:
    """Say whether chats are logged, where, and how much is there."""
    from .logs import LogStore, logging_enabled, logs_path

    path = logs_path()
    click.echo(f"Logging is {'on' if logging_enabled() else 'off'}; the log is {path}")
    if path.exists():
        with LogStore() as store:
            responses = store.latest(0)
        conversations = len({r.conversation_id for r in responses})
        click.echo(f"{len(responses)} responses in {conversations} conversations, {path.stat().st_size:,} bytes")


@logs_group.command(name="on")
def logs_on() -> None:
    """Log every chat from now on (the default)."""
    from .logs import set_logging

    set_logging(True)
    click.echo("Logging is on.")


@logs_group.command(name="off")
def logs_off() -> None:
    """Stop logging chats (`anymal chat --log` still logs one)."""
    from .logs import set_logging

    set_logging(False)
    click.echo("Logging is off.")
