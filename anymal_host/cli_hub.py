"""``anymal hub``: publish, fetch and browse adapter packages on the Hugging Face Hub or a folder hub."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_common import adapter_cache, echo_warnings, hf_endpoint
from .plugins import get_registry

__all__ = ["hub_group"]


@click.group(name="hub")
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

    hub, repo, revision = hub_for(ref, hf_endpoint=hf_endpoint())
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
    with echo_warnings():
        folder = resolve(parsed, cache_dir=cache_dir or (adapter_cache() if parsed.kind == "hf" else None),
                         hf_endpoint=hf_endpoint())
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
    with echo_warnings():
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

    hub, repo, revision = hub_for(ref, hf_endpoint=hf_endpoint())
    with echo_warnings():
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


def _hub_from_spec(spec: str | None):
    """``--hub``: 'hf' / empty (Hugging Face Hub at $HF_ENDPOINT), an http(s) endpoint, file:///root or a path."""
    from urllib.parse import unquote, urlsplit

    from adapters_hub import FolderHub, HFHub, InvalidRefError

    spec = (spec or "hf").strip()
    if spec in ("hf", "hf://", "huggingface"):
        return HFHub(endpoint=hf_endpoint())
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
