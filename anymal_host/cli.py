"""The ``anymal`` command line. Every command has a Python twin on :class:`anymal_host.AnymalHost`."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click

from .errors import AnymalError
from .plugins import Registry, get_registry

__all__ = ["cli", "make_cli", "main"]

_LLM_HELP = ("LLM to use: a Hub id or a local folder. Default: $ANYMAL_LLM, else the embedded "
             "SmolLM2-135M-Instruct (converted once into $ANYMAL_HOME).")


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
    """


@cli.command()
def plugins() -> None:
    """List installed plugins: version, hooks, what each registered, and errors of plugins that failed."""
    registry = get_registry()
    for info in registry.plugin_infos():
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
def modalities() -> None:
    """List the modalities the installed plugins provide, with the files they accept."""
    registry = get_registry()
    found = registry.modalities
    if not found:
        click.echo("No modality plugins are installed. Install one, e.g. `pip install anymal-plugin-imu`.")
        return
    bundled = {n: p for n, p in registry.bundled_adapters.items()}
    for name, modality in sorted(found.items()):
        click.echo(f"{name}  (plugin {registry.provider('modality', name)})")
        if modality.description:
            click.echo(f"    {modality.description}")
        click.echo(f"    accepts: {' '.join(modality.file_extensions) or '-'}  {' '.join(modality.media_types)}")
        spec = modality.signal_spec
        facts = [f"{k}={v}" for k, v in (("sample_rate", spec.sample_rate), ("channels", spec.channels), ("size", spec.size)) if v]
        if facts:
            click.echo(f"    signal: {', '.join(facts)}")
        adapters = [n for n, p in bundled.items() if _modality_of_folder(p) == name]
        click.echo(f"    bundled adapters: {', '.join(adapters) or 'none'}")


@cli.command()
@click.argument("prompt")
@click.option("--attach", "attachments", multiple=True, type=click.Path(dir_okay=False),
              help="A file to attach (repeatable); its modality is chosen by file type.")
@click.option("--modality", help="Modality of every --attach file, when the file type is ambiguous.")
@click.option("--adapter", "adapters", multiple=True, help="Adapter ref to load first (repeatable): "
              "org/name[@rev], hf://org/name[@rev], file:///path or a folder.")
@click.option("--llm", default=None, help=_LLM_HELP)
@click.option("--quantize", type=click.Choice(["4bit", "8bit"]), default=None, help="Load the LLM with bitsandbytes.")
@click.option("--max-new-tokens", default=64, show_default=True, help="Longest answer in tokens.")
@click.option("--system", default=None, help="A system message to put first.")
@click.option("--force", is_flag=True, help="Load adapters trained for another LLM anyway (warns).")
def chat(prompt: str, attachments: tuple[str, ...], modality: str | None, adapters: tuple[str, ...], llm: str | None,
         quantize: str | None, max_new_tokens: int, system: str | None, force: bool) -> None:
    """Answer PROMPT with the LLM, looking at any attached signals.

    Same as AnymalHost(llm).chat(PROMPT, attachments=[...]) in Python.
    """
    from .host import AnymalHost
    from .llm import LLMOptions
    from .prompt import Attachment

    host = AnymalHost(llm, llm_options=LLMOptions(quantization=quantize))
    for ref in adapters:
        name = host.load_adapter(ref, force=force)
        click.echo(f"loaded adapter {name} from {ref}", err=True)
    parts = []
    for path in attachments:
        if not Path(path).is_file():
            raise click.BadParameter(f"{path} does not exist or is not a file", param_hint="--attach")
        parts.append(Attachment(source=path, modality=modality))
    click.echo(host.chat(prompt, attachments=parts, max_new_tokens=max_new_tokens, system=system))


def _modality_of_folder(folder: Path) -> str | None:
    from .host import _folder_modality

    return _folder_modality(folder)


def make_cli(registry: Registry | None = None) -> click.Group:
    """The root group with the built-in commands plus those plugins add through ``register_commands``.

    A plugin that raises or reuses an existing command name is reported (``anymal plugins``) and the rest work.
    """
    registry = registry or get_registry()
    group = click.Group(name=cli.name, commands=dict(cli.commands), help=cli.help, params=list(cli.params),
                        context_settings=cli.context_settings)
    for impl in registry.pm.hook.register_commands.get_hookimpls():
        before = dict(group.commands)
        try:
            impl.function(cli=group)
        except Exception as exc:
            registry.plugins[impl.plugin_name].errors.append(f"register_commands raised {type(exc).__name__}: {exc}")
            group.commands = before
            continue
        for name, command in list(group.commands.items()):
            if name in before and before[name] is not command:
                registry.plugins[impl.plugin_name].errors.append(
                    f"register_commands: command {name!r} already exists; kept the existing one (rename the plugin's)")
                group.commands[name] = before[name]
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
    except AnymalError as exc:
        click.echo(click.style("error: ", fg="red") + str(exc), err=True)
        if os.environ.get("ANYMAL_DEBUG"):
            traceback.print_exc()
        sys.exit(1)


if __name__ == "__main__":
    main()
