"""``README.md``: the Hub model card of an adapter package (YAML front matter + a human summary).

The front matter follows what peft and timm write, so the Hub files an adapter where people look for one:
``library_name: anymal``, a ``pipeline_tag``, ``base_model`` with ``base_model_relation: adapter`` (the Hub's
model tree), tags, the training ``datasets``, ``language``, ``license`` and a ``model-index`` holding the
evaluation figures the config records. Cards keep what older anymal versions wrote (the ``anymal`` block, the
``anymal-adapter`` / ``<modality>`` / ``anymal-modality-<modality>`` tags, the metrics table and the
"Evaluation figures measured with:" block), so every reader of older cards reads the new ones.

The "Use" section names the ref the package is published under. A package on disk does not know it yet and
says ``ORG/NAME``; publishing rewrites the section (:func:`retarget_card`) for the repo it goes to.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCardData

from .checks import plugin_package_name
from .config import AdapterConfig

__all__ = [
    "ADAPTER_TAG", "LIBRARY_NAME", "DEFAULT_PIPELINE_TAG", "PIPELINE_TAGS", "LANGUAGES", "EVALUATION_HEADING",
    "CardTarget", "UNPUBLISHED", "pipeline_tag", "training_datasets", "evaluation_commands", "eval_results",
    "card_metadata", "usage_section", "render_model_card", "retarget_card", "split_front_matter",
    "strip_local_paths",
]

#: Tag every adapter package carries; hubs list adapters by it (``list_models(filter="anymal-adapter")``).
ADAPTER_TAG = "anymal-adapter"
#: ``library_name`` on the Hub.
LIBRARY_NAME = "anymal"
#: ``pipeline_tag`` by modality. An adapter makes the LLM answer text about an input of its modality plus a
#: text prompt, which is the Hub's ``<modality>-text-to-text`` task where the Hub has one; a modality without
#: such a task (imu, and whatever a third-party plugin adds) is ``any-to-any``.
PIPELINE_TAGS = {"image": "image-text-to-text", "audio": "audio-text-to-text", "video": "video-text-to-text"}
DEFAULT_PIPELINE_TAG = "any-to-any"
#: The language of the prompts and answers every bundled data set trains on.
LANGUAGES = ["en"]
#: The line ``anymal eval --update-card`` writes above the commands that measured the card's figures
#: (``anymal_host.card_metrics`` reads the block back; the model-index is built from it).
EVALUATION_HEADING = "Evaluation figures measured with:"

# A Hub id (``org/name``): only those are valid ``base_model`` values; a local path is left out of the YAML.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# An absolute local path in running text (not the path part of a URL such as https://host/a/b).
_LOCAL_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/)[^\s`'\"()<>]*/([^\s`'\"()<>/]+)/?")
# What training writes at the start of a config's description: "Stage 1 alignment on imu:hapt: ...".
_TRAINED_ON = re.compile(r"^Stage \d+ (?:alignment|instruction tuning) on ([a-z][a-z0-9_]*:[A-Za-z0-9_.-]*"
                         r"[A-Za-z0-9_])")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.S)
_USE_SECTION = re.compile(r"^## Use[ \t]*\r?\n.*?(?=^## |\Z)", re.S | re.M)
# Front-matter keys anymal derives from the config: on publishing they replace what the card says. Any other
# key the author set (a licence, other datasets, a pipeline_tag) is kept.
_DERIVED_KEYS = ("library_name", "base_model", "base_model_relation", "anymal", "model-index")


def strip_local_paths(text: str) -> str:
    """``anymal eval --adapter /home/me/runs/imu/best`` -> ``anymal eval --adapter best``: a published card must
    not carry the author's folders (they mean nothing elsewhere and tell more than intended)."""
    return _LOCAL_PATH.sub(lambda m: m.group(1), text)


def pipeline_tag(modality: str) -> str:
    """The Hub ``pipeline_tag`` of an adapter for ``modality`` (see :data:`PIPELINE_TAGS`)."""
    return PIPELINE_TAGS.get(modality, DEFAULT_PIPELINE_TAG)


def training_datasets(config: AdapterConfig) -> list[str]:
    """The data sets the adapter was trained on, as the config records them: training writes "Stage N alignment
    on <modality:name>: ..." at the start of ``description``. Empty when the description does not say."""
    match = _TRAINED_ON.match(config.description.strip())
    return [match.group(1)] if match else []


# -- the usage snippet ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardTarget:
    """Where a card's "Use" section tells its readers to get the adapter from."""

    # The ref ``load_adapter`` and ``--adapter`` take (``org/name``, ``org/name@dev``,
    # ``file://HUB_ROOT/org/name``).
    ref: str
    # The CLI command that fetches it.
    pull: str
    # A sentence under the snippet (what a placeholder stands for), or "".
    note: str = ""

    @classmethod
    def hugging_face(cls, repo: str, revision: str | None = None) -> "CardTarget":
        """A Hugging Face Hub repo (``revision``: the branch it was pushed to, None for main)."""
        ref = f"{repo}@{revision}" if revision and revision != "main" else repo
        return cls(ref, f"anymal hub pull {ref}")

    @classmethod
    def folder_hub(cls, repo: str, revision: str | None = None) -> "CardTarget":
        """A repo in a folder hub. The card names the hub's root ``HUB_ROOT``, not its path: where a shared
        folder is mounted differs from machine to machine, and a card carries no absolute paths."""
        at = f"@{revision}" if revision and revision != "main" else ""
        return cls(f"file://HUB_ROOT/{repo}{at}", f"anymal hub pull --hub HUB_ROOT {repo}{at}",
                   "`HUB_ROOT` is the absolute path of the folder hub's root where you mounted it.")


#: The target of a package that has not been published: ``anymal hub push`` puts the real repo in its place.
UNPUBLISHED = CardTarget("ORG/NAME", "anymal hub pull ORG/NAME",
                         "`ORG/NAME` is the repo this package is published to: `anymal hub push FOLDER ORG/NAME` "
                         "writes it here.")


def usage_section(config: AdapterConfig, target: CardTarget = UNPUBLISHED) -> str:
    """The card's "## Use" section: install, then load ``target.ref`` from the command line and from Python.
    Only commands of the published packages (no ``make``, no path into a checkout, no absolute path)."""
    prompt = f"Describe this {config.modality} input."
    note = f"\n{target.note}" if target.note else ""
    return f"""## Use

```bash
pip install anymal {plugin_package_name(config.modality)}
{target.pull}
anymal chat --adapter {target.ref} --attach FILE "{prompt}"
```

```python
from anymal_host import AnymalHost

host = AnymalHost()  # anymal's default LLM; pass the id or folder of the LLM this adapter was trained for
host.load_adapter("{target.ref}")  # refused unless the LLM's fingerprint is the one the package records
print(host.chat("{prompt}", attachments=["FILE"]))
```

`FILE` is {_article(config.modality)} {config.modality} input the plugin reads (`anymal modalities` lists the file
types).{note}
"""


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


# -- front matter --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evaluation:
    """One ``anymal eval --update-card`` command of a card: which data set and split its figures come from, and
    the prefix (``--card-prefix``) its figures carry in the config's metrics."""

    # Registered data set, ``modality:name`` (``--data``).
    data: str
    # Split answered (``--split``; ``anymal eval``'s default is ``test``).
    split: str
    # ``--card-prefix`` without the ``_`` (empty: the figures carry no prefix).
    prefix: str


def evaluation_commands(text: str) -> list[_Evaluation]:
    """The ``anymal eval`` commands under the card's "Evaluation figures measured with:" heading."""
    if EVALUATION_HEADING not in text:
        return []
    block = text.split(EVALUATION_HEADING, 1)[1].split("```bash", 1)[-1].split("```", 1)[0]
    found = []
    for line in block.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if words[:2] != ["anymal", "eval"]:
            continue
        options = _options(words[2:])
        if options.get("--data"):
            found.append(_Evaluation(options["--data"], options.get("--split") or "test",
                                     options.get("--card-prefix") or ""))
    return found


def _options(words: list[str]) -> dict[str, str]:
    """``--name value`` and ``--name=value`` pairs of a command line."""
    out: dict[str, str] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            out[name] = value if eq else (words[i + 1] if i + 1 < len(words) else "")
    return out


def _metric_type(name: str) -> str:
    """A Hub metric id for an anymal metric name (``activity_accuracy`` -> ``accuracy``)."""
    for suffix, metric in (("accuracy", "accuracy"), ("bleu4", "bleu"), ("rouge_l", "rouge"), ("cider", "cider")):
        if name.endswith(suffix):
            return metric
    return name


def _is_figure(name: str, value: Any) -> bool:
    """An evaluation figure (not bookkeeping: the step, item counts, training-time validation figures)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return name != "step" and not name.startswith(("n_", "val_"))


def eval_results(config: AdapterConfig, card_text: str = "") -> list[EvalResult]:
    """The config's evaluation figures as the Hub's eval results, each tied to the data set and split that
    measured it: a metric belongs to the ``anymal eval`` command of the card whose ``--card-prefix`` it
    carries (the longest), one without a prefix to the command without one. Without such a command, figures
    are tied to the training data set. Figures with neither are left out of the model-index (the metrics
    table still shows them)."""
    commands = sorted(evaluation_commands(card_text), key=lambda c: len(c.prefix), reverse=True)
    plain = [c for c in commands if not c.prefix]
    trained = training_datasets(config)
    fallback = plain[-1] if plain else (_Evaluation(trained[0], "test", "") if trained else None)
    task = pipeline_tag(config.modality)
    results = []
    for key, value in sorted(config.metrics.items()):
        source = next((c for c in commands if c.prefix and key.startswith(c.prefix + "_")), fallback)
        if source is None:
            continue
        name = key[len(source.prefix) + 1:] if source.prefix else key
        if not _is_figure(name, value):
            continue
        results.append(EvalResult(task_type=task, dataset_type=source.data, dataset_name=source.data,
                                  dataset_split=source.split, metric_type=_metric_type(name),
                                  metric_value=value, metric_name=key))
    return results


def card_metadata(config: AdapterConfig, *, license: str | None = "apache-2.0", card_text: str = "") -> dict:
    """The front matter of ``config``'s card as a dict (YAML keys). ``card_text`` is the card's body, where the
    commands that measured the figures are listed (for the model-index)."""
    hub_llm = config.llm.name if _HUB_ID.match(config.llm.name) else None
    tags = [LIBRARY_NAME, ADAPTER_TAG, f"anymal-{config.modality}", config.modality,
            f"anymal-modality-{config.modality}"] + ([f"base_model:adapter:{hub_llm}"] if hub_llm else [])
    results = eval_results(config, card_text)
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        pipeline_tag=pipeline_tag(config.modality),
        base_model=hub_llm,
        base_model_relation="adapter" if hub_llm else None,
        tags=list(dict.fromkeys(tags)),
        datasets=training_datasets(config) or None,
        language=list(LANGUAGES),
        license=license,
        model_name=config.name if results else None,
        eval_results=results or None,
        # Summary for hubs that list by card data without downloading the config.
        anymal={"modality": config.modality, "llm_hidden_size": config.llm.hidden_size,
                "llm_fingerprint": config.llm.fingerprint, "num_tokens": config.num_tokens,
                "token_mode": config.token_mode,
                "projector": config.projector.type, "schema_version": config.schema_version},
    )
    return {k: v for k, v in data.to_dict().items() if v is not None}


def _yaml(metadata: dict) -> str:
    return yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)


def split_front_matter(text: str) -> tuple[dict | None, str]:
    """``(front matter, body)`` of a card; front matter None when the card has none (or it is not a YAML
    mapping, in which case the whole text is the body)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    try:
        data = yaml.safe_load(match.group(1) or "")
    except yaml.YAMLError:
        return None, text
    if data is None:
        data = {}
    return (data, text[match.end():]) if isinstance(data, dict) else (None, text)


# -- the whole card ------------------------------------------------------------------------------------------


def _llm_label(name: str) -> str:
    return name if _HUB_ID.match(name) else f"a local LLM ({strip_local_paths(name)})"


def _metrics_table(metrics: dict[str, object]) -> str:
    if not metrics:
        return "No evaluation figures were recorded.\n"
    rows = "\n".join(f"| {name} | {value} |" for name, value in sorted(metrics.items()))
    return "| metric | value |\n|---|---|\n" + rows + "\n"


def render_model_card(config: AdapterConfig, *, license: str = "apache-2.0", readme_extra: str = "",
                      target: CardTarget = UNPUBLISHED) -> str:
    """The model card text for ``config``: front matter (:func:`card_metadata`) and a body with a summary,
    the usage snippet for ``target``, the metrics table and ``readme_extra`` (where ``anymal eval`` lists the
    commands that measured the figures)."""
    extra = strip_local_paths(readme_extra)
    lora = "a LoRA on the LLM (`lora/`, peft format) and " if config.lora is not None else ""
    body = f"""
# {config.name}

An [anymal](https://arxiv.org/abs/2309.16058) **{config.modality}** adapter for `{_llm_label(config.llm.name)}`
(hidden size {config.llm.hidden_size}): the `{config.encoder.name}` encoder and a `{config.projector.type}` projector
turn one {config.modality} input into {config.tokens_text()} in the LLM's embedding space. The package holds
{lora}`adapter.safetensors` ({'projector and encoder' if config.encoder.weights_included else 'projector'} weights).

{strip_local_paths(config.description)}

{usage_section(config, target)}
## Metrics

{_metrics_table(config.metrics)}
{extra}
"""
    return f"---\n{_yaml(card_metadata(config, license=license, card_text=extra))}---\n{body}"


def retarget_card(text: str, config: AdapterConfig, target: CardTarget) -> str:
    """``text`` (a package's card) as it is published to ``target``: the front matter brought up to date
    (:func:`card_metadata`; keys the config decides are replaced, the author's other keys and tags are kept),
    absolute local paths taken out of the body (:func:`strip_local_paths`), and the "## Use" section replaced by
    one naming ``target``. A card without a Use section gets none: its author wrote it by hand, and only the
    front matter is anymal's."""
    existing, body = split_front_matter(text)
    existing = existing or {}
    ours = card_metadata(config, license=existing.get("license") or "apache-2.0", card_text=body)
    merged = {k: v for k, v in existing.items() if k not in _DERIVED_KEYS}
    for key, value in ours.items():
        if key == "tags":
            kept = existing.get("tags") if isinstance(existing.get("tags"), list) else []
            merged["tags"] = list(dict.fromkeys([*kept, *value]))
        elif key in _DERIVED_KEYS or key not in merged:
            merged[key] = value
    body = _USE_SECTION.sub(lambda _: usage_section(config, target) + "\n", strip_local_paths(body), count=1)
    return f"---\n{_yaml(merged)}---\n{body if body.startswith(chr(10)) else chr(10) + body}"
