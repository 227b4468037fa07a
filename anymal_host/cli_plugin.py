"""``anymal plugin new``: start a modality plugin from a complete, working scaffold."""

from __future__ import annotations

import click

__all__ = ["plugin_group"]


@click.group(name="plugin")
def plugin_group() -> None:
    """Write plugins: a modality, its encoder and data sets, as an installable distribution."""


@plugin_group.command(name="new")
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder to create anymal-plugin-NAME/ in.")
@click.option("--description", default=None, help="One line for the package metadata, the README and "
                                                  "`anymal modalities` (default: 'NAME recordings as a sense for anymal').")
@click.option("--force", is_flag=True, help="Write into an existing anymal-plugin-NAME/ folder: the scaffold's files "
                                           "replace their namesakes, every other file stays.")
def new_command(name: str, parent: str, description: str | None, force: bool) -> None:
    """Write anymal-plugin-NAME/: a complete plugin for the modality NAME.

    NAME is the modality's name: lower-case letters, digits and underscores, starting with a letter. The
    plugin is a small working example to edit: a time series read from a text file (one reading per line),
    a convolutional encoder, a generated data set NAME:demo, tests that use anymal's conformance kit and
    train a few steps against the tiny test LLM, a README, and an adapters/ folder to bundle trained adapters.

    \b
    Example:
      anymal plugin new pulse --description "Heart rate, one reading a second"
      cd anymal-plugin-pulse && pip install -e ".[test]" && anymal plugins && pytest
    """
    from .scaffold import check_name, new_plugin

    try:
        check_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    try:
        root, written = new_plugin(name, parent, description=description, force=force)
    except ValueError as exc:  # the name passed above: only the description is left to refuse
        raise click.BadParameter(str(exc), param_hint="--description") from None
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {root}/")
    for path in written:
        click.echo(f"    {path.relative_to(root).as_posix()}")
    click.echo("\nnext:")
    for command in (f"cd {root}", 'pip install -e ".[test]"', "anymal plugins", "pytest",
                    f"anymal train align --data {name}:demo --out runs/{name} --steps 60 --batch-size 8 "
                    "--eval-every 20 --lr 3e-3"):
        click.echo(f"    {command}")
