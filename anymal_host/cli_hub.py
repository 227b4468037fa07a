"""``anymal hub``: publish, fetch and browse adapter packages on the Hugging Face Hub or a folder hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .cli_common import adapter_cache, echo_warnings, hf_endpoint
from .plugins import get_registry

__all__ = ["hub_group"]

_HUB_HELP = ("Hub a bare ORG/NAME names: 'hf' (Hugging Face Hub at $HF_ENDPOINT, the default), an http(s):// "
             "endpoint speaking the Hub API, or file:///root / a folder path for a folder hub. A REF that names "
             "its hub (hf://, file://, a path) keeps it.")


def _hub_option(help_text: str = _HUB_HELP):
    return click.option("--hub", "hub_spec", default=None, envvar="ANYMAL_HUB", show_envvar=True, help=help_text)


def _json_option(what: str):
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print {what} as JSON on stdout (keys above); errors still go to stderr with exit 1.")


@click.group(name="hub")
def hub_group() -> None:
    """Publish, fetch and browse adapter packages on a hub.

    \b
    Refs: org/name[@rev] or hf://org/name[@rev]   Hugging Face Hub ($HF_ENDPOINT honoured),
                                                  or the hub --hub / $ANYMAL_HUB names
          file:///abs/root/org/name[@rev]          folder hub (a local or shared folder)
          /abs/root/org/name[@rev], ./root/...     the same folder hub, by path
    """


@hub_group.command(name="push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("ref")
@click.option("-m", "--message", default=None, help="Commit message (default: 'Upload anymal adapter <name>').")
@_hub_option("Hub a bare ORG/NAME REF is published to: 'hf' (Hugging Face Hub at $HF_ENDPOINT, the default), an "
             "http(s):// endpoint speaking the Hub API, or file:///root / a folder path for a folder hub (made on "
             "first push). A REF that names its hub (hf://, file://, a path) keeps it.")
@click.option("--revision", "branch", default=None, metavar="BRANCH",
              help="Publish to BRANCH instead of main; a missing branch is created from main.")
@click.option("--private", is_flag=True,
              help="Hugging Face Hub: create the repo private (a repo that exists and is public is refused: "
                   "--private does not change an existing repo). Folder hubs have no visibility and refuse it.")
@click.option("--create-pr", is_flag=True,
              help="Hugging Face Hub: open a pull request into main instead of committing, and print its "
                   "address. Folder hubs have no pull requests and refuse it: use --revision.")
def hub_push(folder: str, ref: str, message: str | None, hub_spec: str | None, branch: str | None,
             private: bool, create_pr: bool) -> None:
    """Publish the adapter package in FOLDER to REF (its main branch, or --revision BRANCH).

    REF is ORG/NAME or hf://ORG/NAME (Hugging Face Hub, or the hub --hub names), file:///ROOT/ORG/NAME, or a
    folder-hub path ROOT/ORG/NAME such as /srv/hub/lab/imu or ./hub/lab/imu (the hub is made on first push).

    The package goes through every check a host runs before loading it (file safety, config, weights, a build
    through the modality's installed plugin and a trial run on its example input), so a hub never holds a
    package every host would refuse. Trainer state of a training checkpoint (trainer_state.json,
    optimizer.safetensors) is left out: a clean copy is published. The copy's model card names the repo it is
    published to, in its usage snippet and front matter.
    """
    import tempfile

    from adapters_hub import hub_for, hub_from_spec, read_package_config

    from .loading import verify_package
    from .training.checkpoint import export_package

    default_hub = hub_from_spec(hub_spec, hf_endpoint=hf_endpoint(), create=True) if hub_spec else None
    hub, repo, at = hub_for(ref, hf_endpoint=hf_endpoint(), hub=default_hub, destination=True)
    if at is not None:
        raise click.BadParameter(f"{ref}: name the branch to publish to with --revision {at}; leave out @{at}",
                                 param_hint="REF")
    hub.check_publish_options(repo, private=private or None, revision=branch, create_pr=create_pr)
    source = Path(folder)
    config = read_package_config(source)
    with tempfile.TemporaryDirectory(prefix="anymal-push-") as tmp:
        clean = Path(tmp) / "package"
        left_out = export_package(source, clean)
        if left_out:
            click.echo(f"leaving out {', '.join(left_out)} (trainer state, not part of the adapter)", err=True)
        verify_package(clean, get_registry())
        published = hub.publish(clean, repo, message or f"Upload anymal adapter {config.name}",
                                private=private or None, revision=branch, create_pr=create_pr)
    where = _repo_label(hub, repo)
    if create_pr:
        if published.pr_url:
            click.echo(f"opened a pull request for {config.name} ({config.modality}) on {where}: {published.pr_url}")
        else:
            click.echo(f"no pull request opened: {where}@{published.branch} already holds exactly this package "
                       f"({published.revision})")
        return
    on_branch = f" (branch {published.branch})" if published.branch != "main" else ""
    click.echo(f"published {config.name} ({config.modality}) to {where}@{published.revision}{on_branch}")


@hub_group.command(name="pull")
@click.argument("ref")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Where Hugging Face downloads go (default: $ANYMAL_HOME/adapters).")
@_hub_option()
@_json_option("the result")
def hub_pull(ref: str, cache_dir: str | None, hub_spec: str | None, as_json: bool) -> None:
    """Fetch REF (checked for safety and completeness) and print its local folder.

    \b
    --json prints one object:
      ref       REF as given
      hub       the hub it came from ("folder hub /srv/hub", "Hugging Face Hub https://..."), null for a
                package folder
      repo      org/name, null for a package folder
      revision  the revision fetched (commit or content hash), null for a package folder
      path      the local folder
    """
    from adapters_hub import check_package, hub_for, hub_from_spec, is_bare_repo_id, parse_ref, resolve

    cache = cache_dir or str(adapter_cache())
    default_hub = (hub_from_spec(hub_spec, hf_endpoint=hf_endpoint(), cache_dir=cache)
                   if hub_spec and is_bare_repo_id(ref) else None)
    parsed = parse_ref(ref) if default_hub is None else None
    hub = repo = None
    with echo_warnings():
        if parsed is not None and parsed.kind == "local":
            folder = resolve(parsed)
        else:
            hub, repo, revision = hub_for(parsed or ref, hub=default_hub, hf_endpoint=hf_endpoint(), cache_dir=cache)
            folder = hub.pull(repo, revision)
        check_package(folder)
    if as_json:
        _echo_json({"ref": ref, "hub": _hub_label(hub) if hub is not None else None, "repo": repo,
                    "revision": folder.name if hub is not None else None, "path": str(folder)})
        return
    click.echo(str(folder))


@hub_group.command(name="ls")
@click.option("--modality", default=None, help="Only adapters of this modality.")
@click.option("--hub", "hub_spec", default=None, envvar="ANYMAL_HUB", show_envvar=True,
              help="Hub to list: 'hf' (Hugging Face Hub at $HF_ENDPOINT, the default), an http(s):// endpoint "
                   "speaking the Hub API, or file:///root / a folder path for a folder hub.")
@_json_option("the adapters")
def hub_ls(modality: str | None, hub_spec: str | None, as_json: bool) -> None:
    """List the adapters published on a hub (head revision of each repo).

    \b
    --json prints an array (empty when nothing is published), one object per repo:
      repo, revision, name, modality    the repo, its head revision, the adapter, its modality
      llm_name, llm_hidden_size,        the LLM it was trained for
      llm_fingerprint
      num_tokens, token_mode, tokens    tokens per attachment (tokens: in words)
      projector, has_lora, metrics      projector type, whether it has a LoRA, evaluation figures
      anymal_version, schema_version    what wrote the package
      error                             why the repo could not be read (the other keys are then empty),
                                        null for a readable one
    """
    from adapters_hub import hub_from_spec

    hub = hub_from_spec(hub_spec, hf_endpoint=hf_endpoint())
    with echo_warnings():
        found = hub.list(modality)
    if as_json:
        _echo_json([summary.to_json() for _, summary in found])
        return
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
@_hub_option()
@_json_option("the details")
def hub_info(ref: str, hub_spec: str | None, as_json: bool) -> None:
    """Show what REF holds (config facts, files, revisions) without downloading its weights.

    \b
    --json prints one object:
      hub             the hub ("folder hub /srv/hub", "Hugging Face Hub https://...")
      repo, revision  org/name and the revision REF resolved to (commit or content hash)
      adapter         the adapter, with the keys of `anymal hub ls --json`
      files           the package's files
      commit_message  the message of that revision, null when the hub does not record one
      revisions       every revision of the repo, newest first
    """
    from adapters_hub import hub_for, hub_from_spec, is_bare_repo_id, plugin_package_name

    default_hub = hub_from_spec(hub_spec, hf_endpoint=hf_endpoint()) if hub_spec and is_bare_repo_id(ref) else None
    hub, repo, revision = hub_for(ref, hf_endpoint=hf_endpoint(), hub=default_hub)
    with echo_warnings():
        info = hub.info(repo, revision)
    if as_json:
        _echo_json({"hub": _hub_label(hub), **info.to_json()})
        return
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


def _echo_json(data: Any) -> None:
    """One JSON document on stdout (nothing else is printed there)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _hub_label(hub) -> str:
    root = getattr(hub, "root", None)
    return f"folder hub {root}" if root is not None else f"Hugging Face Hub {getattr(hub, 'endpoint', '')}"


def _repo_label(hub, repo: str) -> str:
    """The ref that names ``repo`` on ``hub`` wherever it is read: ``file:///root/org/name`` for a folder hub,
    ``org/name`` on the Hugging Face Hub."""
    root = getattr(hub, "root", None)
    return f"file://{Path(root).as_posix()}/{repo}" if root is not None else repo


def _fmt_metric(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
