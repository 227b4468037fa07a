"""The ``anymal`` command line. Every command has a Python twin on :class:`anymal_host.AnymalHost`."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from .errors import AnymalError
from .plugins import Registry, get_registry

__all__ = ["cli", "make_cli", "main"]

_LLM_HELP = ("LLM to use: a Hub id (org/name) or a local folder (/abs/path or ./path; a bare org/name that is "
             "also a folder is refused as ambiguous). Default: $ANYMAL_LLM, else the embedded "
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
      anymal adapters
      anymal hub ls --modality imu
    """


@cli.command()
def plugins() -> None:
    """List installed plugins: version, hooks, what each registered, and errors of plugins that failed."""
    registry = get_registry()
    infos = registry.plugin_infos()
    for warning in registry.warnings:
        click.echo(click.style("warning: ", fg="yellow") + warning)
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
def modalities() -> None:
    """List the modalities the installed plugins provide, with the files they accept."""
    from .host import _folder_modality

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
        adapters = [n for n, p in bundled.items() if _folder_modality(p) == name]
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
        with _echo_warnings():
            name = host.load_adapter(ref, force=force)
        click.echo(f"loaded adapter {name} from {ref}", err=True)
    parts = []
    for path in attachments:
        if not Path(path).is_file():
            raise click.BadParameter(f"{path} does not exist or is not a file", param_hint="--attach")
        parts.append(Attachment(source=path, modality=modality))
    click.echo(host.chat(prompt, attachments=parts, max_new_tokens=max_new_tokens, system=system))


@cli.command(name="adapters")
@click.option("--adapter", "adapters", multiple=True, help="Also load this adapter ref first (repeatable).")
@click.option("--llm", default=None, help=_LLM_HELP)
@click.option("--check", is_flag=True, help="Load the LLM and check each adapter's LLM fingerprint against it.")
def adapters_command(adapters: tuple[str, ...], llm: str | None, check: bool) -> None:
    """List the adapters a host would use: the plugins' bundled ones (loaded on first need) and any --adapter.

    Same as AnymalHost(llm).list_adapters() in Python.
    """
    from .host import AnymalHost

    host = AnymalHost(llm)
    with _echo_warnings():
        for ref in adapters:
            host.load_adapter(ref)
    rows = host.list_adapters(load_llm=check)
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
        lora = ", LoRA (not hot-loadable)" if row["has_lora"] else ""
        click.echo(f"{row['name']}  [{row['kind']}, {state}]")
        click.echo(f"    modality {row['modality']}, {row['projector']} projector, {row['tokens']}{lora}")
        click.echo(f"    llm {row['llm']}: {match}")
        click.echo(f"    source {row['source']}" + (f" @ {row['revision'][:12]}" if row.get("revision") else ""))


@cli.group(name="hub")
def hub_group() -> None:
    """Publish, fetch and browse adapter packages on a hub.

    \b
    Refs: org/name[@rev] or hf://org/name[@rev]   Hugging Face Hub ($HF_ENDPOINT honoured)
          file:///abs/root/org/name[@rev]          folder hub (a local or shared folder)
    """



@hub_group.command(name="push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("ref")
@click.option("-m", "--message", default=None, help="Commit message (default: 'Upload anymal adapter <name>').")
def hub_push(folder: str, ref: str, message: str | None) -> None:
    """Publish the adapter package in FOLDER as the new main revision of REF.

    The package goes through every check a host runs before loading it (file safety, config, weights, a build
    through the modality's installed plugin and a trial run on its example input), so a hub never holds a
    package every host would refuse. Trainer state of a training checkpoint (trainer_state.json,
    optimizer.safetensors) is left out: a clean copy is published.
    """
    import tempfile

    from adapters_hub import hub_for, read_package_config

    from .loading import verify_package
    from .training.checkpoint import export_package

    hub, repo, revision = hub_for(ref, hf_endpoint=_hf_endpoint())
    if revision is not None:
        raise click.BadParameter(f"{ref}: push publishes the new main revision; leave out @{revision}",
                                 param_hint="REF")
    source = Path(folder)
    config = read_package_config(source)
    with tempfile.TemporaryDirectory(prefix="anymal-push-") as tmp:
        clean = Path(tmp) / "package"
        left_out = export_package(source, clean)
        if left_out:
            click.echo(f"leaving out {', '.join(left_out)} (trainer state, not part of the adapter)", err=True)
        verify_package(clean, get_registry())
        published = hub.push(clean, repo, message or f"Upload anymal adapter {config.name}")
    click.echo(f"published {config.name} ({config.modality}) to {ref}@{published}")


@hub_group.command(name="pull")
@click.argument("ref")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Where Hugging Face downloads go (default: $ANYMAL_HOME/adapters).")
def hub_pull(ref: str, cache_dir: str | None) -> None:
    """Fetch REF (checked for safety and completeness) and print its local folder."""
    from adapters_hub import check_package, parse_ref, resolve

    parsed = parse_ref(ref)
    with _echo_warnings():
        folder = resolve(parsed, cache_dir=cache_dir or (_adapter_cache() if parsed.kind == "hf" else None),
                         hf_endpoint=_hf_endpoint())
        check_package(folder)
    click.echo(str(folder))


@hub_group.command(name="ls")
@click.option("--modality", default=None, help="Only adapters of this modality.")
@click.option("--hub", "hub_spec", default=None, envvar="ANYMAL_HUB", show_envvar=True,
              help="Hub to list: 'hf' (Hugging Face Hub at $HF_ENDPOINT, the default), an http(s):// endpoint "
                   "speaking the Hub API, or file:///root / a folder path for a folder hub.")
def hub_ls(modality: str | None, hub_spec: str | None) -> None:
    """List the adapters published on a hub (head revision of each repo)."""
    hub = _hub_from_spec(hub_spec)
    with _echo_warnings():
        found = hub.list(modality)
    if not found:
        click.echo(f"No adapters{f' for modality {modality!r}' if modality else ''} on {_hub_label(hub)}.")
        return
    for repo, summary in found:
        if summary.error is not None:  # one broken repo is shown with its reason; the others still list
            at = f"@{summary.revision[:12]}" if summary.revision else ""
            click.echo(f"{repo}{at}  " + click.style("unreadable: ", fg="red") + summary.error)
            continue
        metrics = ", ".join(f"{k}={_fmt_metric(v)}" for k, v in sorted(summary.metrics.items()))
        lora = ", LoRA" if summary.has_lora else ""
        click.echo(f"{repo}@{(summary.revision or '')[:12]}  {summary.modality}  {summary.projector} projector, "
                   f"{summary.tokens_text}{lora}  llm {summary.llm_name}" + (f"  {metrics}" if metrics else ""))


@hub_group.command(name="info")
@click.argument("ref")
def hub_info(ref: str) -> None:
    """Show what REF holds (config facts, files, revisions) without downloading its weights."""
    from adapters_hub import hub_for, plugin_package_name

    hub, repo, revision = hub_for(ref, hf_endpoint=_hf_endpoint())
    with _echo_warnings():
        info = hub.info(repo, revision)
    s = info.summary
    click.echo(f"{info.repo}@{info.revision}  ({_hub_label(hub)})")
    click.echo(f"    adapter    {s.name} for modality {s.modality} (pip install {plugin_package_name(s.modality)})")
    click.echo(f"    projector  {s.projector}, {s.tokens_text}{', with a LoRA for the LLM' if s.has_lora else ''}")
    click.echo(f"    llm        {s.llm_name}, hidden size {s.llm_hidden_size}, fingerprint {s.llm_fingerprint[:23]}")
    if s.metrics:
        click.echo("    metrics    " + ", ".join(f"{k}={_fmt_metric(v)}" for k, v in sorted(s.metrics.items())))
    click.echo(f"    written by anymal {s.anymal_version}, schema {s.schema_version}")
    if info.commit_message:
        click.echo(f"    commit     {info.commit_message}")
    click.echo(f"    files      {', '.join(info.files)}")
    if info.revisions:
        click.echo(f"    revisions  {', '.join(r[:12] for r in info.revisions[:10])}"
                   + (f" (+{len(info.revisions) - 10} more)" if len(info.revisions) > 10 else ""))


def _hf_endpoint() -> str | None:
    """$HF_ENDPOINT read now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT") or None


def _adapter_cache() -> Path:
    from .paths import anymal_home

    return anymal_home() / "adapters"


def _hub_from_spec(spec: str | None):
    """``--hub``: 'hf' / empty (Hugging Face Hub at $HF_ENDPOINT), an http(s) endpoint, file:///root or a path."""
    from urllib.parse import unquote, urlsplit

    from adapters_hub import FolderHub, HFHub, InvalidRefError

    spec = (spec or "hf").strip()
    if spec in ("hf", "hf://", "huggingface"):
        return HFHub(endpoint=_hf_endpoint())
    if spec.startswith(("http://", "https://")):
        return HFHub(endpoint=spec.rstrip("/"))
    if spec.startswith("file://"):
        parts = urlsplit(spec)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidRefError(f"--hub {spec!r}: a folder hub needs an absolute path, file:///abs/root")
        return FolderHub(unquote(parts.path))
    if "://" in spec:
        raise InvalidRefError(f"--hub {spec!r}: use 'hf', an http(s):// Hub endpoint, file:///root or a folder path")
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise InvalidRefError(f"--hub {spec!r}: no such folder; pass a folder hub's root (or 'hf' for Hugging Face)")
    return FolderHub(root)


def _hub_label(hub) -> str:
    root = getattr(hub, "root", None)
    return f"folder hub {root}" if root is not None else f"Hugging Face Hub {getattr(hub, 'endpoint', '')}"


def _fmt_metric(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class _echo_warnings:
    """Print the adapter warnings (forced load, newer config, offline hub) a command meets as ``warning: ...``."""

    def __enter__(self) -> None:
        import warnings

        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc_info) -> None:
        import warnings

        self._catcher.__exit__(*exc_info)
        hub_errors = sys.modules.get("adapters_hub.errors")
        ours = hub_errors.AdapterPackageWarning if hub_errors is not None else ()
        seen = set()
        for w in self._caught:
            text = str(w.message)
            if not (ours and issubclass(w.category, ours)):  # not ours: shown as Python would have
                if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
                continue
            if text not in seen:
                seen.add(text)
                click.echo(click.style("warning: ", fg="yellow") + text, err=True)


from .cli_training import datasets_command, eval_command, train_group  # noqa: E402  (commands live in their own module)

cli.add_command(train_group)
cli.add_command(eval_command)
cli.add_command(datasets_command)
from .cli_plugin import plugin_group  # noqa: E402  (`anymal plugin new`: the scaffold)
cli.add_command(plugin_group)
from .cli_serve import serve_command  # noqa: E402  (`anymal serve`: FastAPI loads only when it runs)
cli.add_command(serve_command)


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
