"""``README.md``: the Hub model card of an adapter package (YAML front matter + a human summary)."""

from __future__ import annotations

import re

from huggingface_hub import ModelCard, ModelCardData

from .checks import plugin_package_name
from .config import AdapterConfig

__all__ = ["ADAPTER_TAG", "LIBRARY_NAME", "render_model_card"]

#: Tag every adapter package carries; hubs list adapters by it (``list_models(filter="anymal-adapter")``).
ADAPTER_TAG = "anymal-adapter"
#: ``library_name`` on the Hub.
LIBRARY_NAME = "anymal"

# A Hub id (``org/name``): only those are valid ``base_model`` values; a local path is left out of the YAML.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# An absolute local path in running text (not the path part of a URL such as https://host/a/b).
_LOCAL_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/)[^\s`'\"()<>]*/([^\s`'\"()<>/]+)/?")


def strip_local_paths(text: str) -> str:
    """``anymal eval --adapter /home/me/runs/imu/best`` -> ``anymal eval --adapter best``: a published card must
    not carry the author's folders (they mean nothing elsewhere and tell more than intended)."""
    return _LOCAL_PATH.sub(lambda m: m.group(1), text)


def _llm_label(name: str) -> str:
    return name if _HUB_ID.match(name) else f"a local LLM ({strip_local_paths(name)})"


def _metrics_table(metrics: dict[str, object]) -> str:
    if not metrics:
        return "No evaluation figures were recorded.\n"
    rows = "\n".join(f"| {name} | {value} |" for name, value in sorted(metrics.items()))
    return "| metric | value |\n|---|---|\n" + rows + "\n"


def render_model_card(config: AdapterConfig, *, license: str = "apache-2.0", readme_extra: str = "") -> str:
    """The model card text for ``config``: front matter (base_model, tags, library_name, license, and the facts
    a hub listing needs under ``anymal``) and a body with usage and a metrics table."""
    data = ModelCardData(
        base_model=config.llm.name if _HUB_ID.match(config.llm.name) else None,
        tags=[ADAPTER_TAG, config.modality, f"anymal-modality-{config.modality}"],
        library_name=LIBRARY_NAME,
        license=license,
        # Summary for hubs that list by card data without downloading the config.
        anymal={"modality": config.modality, "llm_hidden_size": config.llm.hidden_size,
                "llm_fingerprint": config.llm.fingerprint, "num_tokens": config.num_tokens,
                "token_mode": config.token_mode,
                "projector": config.projector.type, "schema_version": config.schema_version},
    )
    lora = "a LoRA on the LLM (`lora/`, peft format) and " if config.lora is not None else ""
    body = f"""
# {config.name}

An [anymal](https://arxiv.org/abs/2309.16058) **{config.modality}** adapter for `{_llm_label(config.llm.name)}`
(hidden size {config.llm.hidden_size}): the `{config.encoder.name}` encoder and a `{config.projector.type}` projector
turn one {config.modality} input into {config.tokens_text()} in the LLM's embedding space. The package holds
{lora}`adapter.safetensors` ({'projector and encoder' if config.encoder.weights_included else 'projector'} weights).

{strip_local_paths(config.description)}

## Use

```bash
pip install anymal {plugin_package_name(config.modality)}
```

```python
host.load_adapter("<this repo>")  # checks schema, plugin, hidden size and LLM fingerprint before loading
```

## Metrics

{_metrics_table(config.metrics)}
{strip_local_paths(readme_extra)}
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
