"""``anymal train``, ``anymal eval``, ``anymal datasets`` and ``anymal instructions``: the CLI twins of
:func:`anymal_host.training.train`, :func:`anymal_host.evaluation.evaluate`, ``Registry.datasets`` and
:func:`anymal_host.instruction_set.write_instruction_set`."""

from __future__ import annotations

import json
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

__all__ = ["train_group", "eval_command", "datasets_command", "instructions_command"]


def _parse_options(pairs: tuple[str, ...], what: str) -> dict[str, object]:
    """``("width=96", "heads=4")`` -> ``{"width": 96, "heads": 4}`` (values read as JSON when they parse)."""
    out: dict[str, object] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r} must read KEY=VALUE", param_hint=what)
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@click.group(name="train")
def train_group() -> None:
    """Train adapters against the host LLM (AnyMAL's stage 1 and stage 2)."""


def _train_options(function):
    options = [
        click.option("--data", "dataset", required=True,
                     help="Registered data set, modality:name (e.g. imu:hapt), or an instruction set folder "
                          "(`anymal instructions`, docs/instructions.md)."),
        click.option("--out", "output_dir", required=True, type=click.Path(file_okay=False),
                     help="Folder for checkpoints (each an adapter package), best/, last/, loss_curve.png."),
        click.option("--name", default=None, help="Adapter name (default MODALITY-PROJECTOR)."),
        click.option("--projector", default="linear", show_default=True, help="linear, mlp, perceiver, or a plugin's."),
        click.option("--projector-option", "projector_options", multiple=True, metavar="KEY=VALUE",
                     help="Projector option, e.g. depth=2 (repeatable)."),
        click.option("--encoder-option", "encoder_options", multiple=True, metavar="KEY=VALUE",
                     help="Encoder config, e.g. name=imu-conv-transformer width=128 (repeatable)."),
        click.option("--preprocess", "preprocessing", multiple=True, metavar="KEY=VALUE",
                     help="Preprocessing option (repeatable): passed to the data set's build and to load/preprocess "
                          "at inference, recorded in the adapter."),
        click.option("--init-encoder", default=None, type=click.Path(exists=True),
                     help="Start the encoder from encoder.safetensors (pretrain-encoder) or an adapter package folder."),
        click.option("--init-from", default=None, type=click.Path(exists=True, file_okay=False),
                     help="Start from this adapter package's weights with a fresh schedule (a stage-1 best/ for "
                          "stage 2, or a trained adapter to train further on other data)."),
        click.option("--freeze-encoder", is_flag=True, help="Train the projector only."),
        click.option("--no-cache-features", is_flag=True,
                     help="With a frozen encoder, run it at every step instead of encoding every example once "
                          "before training (same result, slower; saves the features' memory, which is logged)."),
        click.option("--num-tokens", default=64, show_default=True, help="Tokens per attachment (perceiver)."),
        click.option("--steps", default=400, show_default=True,
                     help="Optimiser steps: the length of the learning-rate schedule."),
        click.option("--stop-after", default=None, type=click.IntRange(min=1),
                     help="End the run after this step of the --steps schedule (validated and checkpointed); "
                          "--resume continues it later."),
        click.option("--batch-size", default=16, show_default=True, help="Examples per step."),
        click.option("--lr", default=1e-3, show_default=True, help="Peak learning rate (projector)."),
        click.option("--encoder-lr", default=None, type=float, help="Peak learning rate of the encoder (default --lr)."),
        click.option("--label-loss", default=0.0, show_default=True, type=click.FloatRange(min=0),
                     help="Weight of a label loss beside the caption loss: a classifier per question reads each "
                          "item's label from the adapter's tokens (dropped after training), so the projector keeps "
                          "what the labels need. 0: off."),
        click.option("--caption-loss", default=1.0, show_default=True, type=click.FloatRange(min=0),
                     help="Weight of the caption loss. 0 with --label-loss trains on the labels alone, without "
                          "running the LLM in the steps (fast): start a normal run from it with --init-from."),
        click.option("--eval-every", default=50, show_default=True, help="Validate and checkpoint every N steps."),
        click.option("--val-items", default=96, show_default=True, help="Validation examples (class-balanced)."),
        click.option("--val-generate", default=32, show_default=True,
                     help="Validation items answered at each validation for the validation accuracy (0: off)."),
        click.option("--max-train-items", default=None, type=int, help="Use at most this many training examples."),
        click.option("--seed", default=0, show_default=True, help="Seed for init, data order and questions."),
        click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None,
                     help="Recompute the LLM's activations in the backward pass: less memory, slower steps "
                          "(default: on with --quantize, else off)."),
        click.option("--quantize", "quantization", type=click.Choice(["4bit", "8bit"]), default=None,
                     help="Load the LLM 4-bit or 8-bit (bitsandbytes) for training."),
        click.option("--resume", "resume_from", default=None, type=click.Path(exists=True, file_okay=False),
                     help="Continue from a checkpoint folder."),
        click.option("--llm", default=None, help="LLM (Hub id or folder); default $ANYMAL_LLM or the embedded one."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _run_training(stage: int, llm: str | None, **kwargs) -> None:
    from .host import AnymalHost
    from .llm import LLMOptions
    from .training import TrainConfig, train

    kwargs["projector_options"] = _parse_options(kwargs.pop("projector_options"), "--projector-option")
    kwargs["encoder"] = _parse_options(kwargs.pop("encoder_options"), "--encoder-option")
    kwargs["preprocessing"] = _parse_options(kwargs.pop("preprocessing"), "--preprocess")
    kwargs["train_encoder"] = not kwargs.pop("freeze_encoder")
    kwargs["cache_features"] = not kwargs.pop("no_cache_features")
    config = TrainConfig(stage=stage, **kwargs)
    host = AnymalHost(llm, llm_options=LLMOptions(quantization=config.quantization))
    with _print_training_warnings():
        result = train(config, host)
    click.echo(f"best checkpoint: {result.best_dir} (validation loss {result.best_val_loss:.3f})")
    if result.val_accuracy is not None:
        click.echo(f"last validation accuracy: {result.val_accuracy:.1%}")
    click.echo(f"loss curve: {result.loss_curve}")


@contextmanager
def _print_training_warnings() -> Iterator[None]:
    """Print a run's :class:`NotLearningWarning` as a ``warning:`` line when it is raised, above the progress bar
    (Python's default would print a source location and could repeat or hide it)."""
    from tqdm.auto import tqdm

    from .training import NotLearningWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", NotLearningWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if issubclass(category, NotLearningWarning):
                with tqdm.external_write_mode(file=sys.stderr):  # clears the bar, then redraws it below
                    click.echo(click.style("warning: ", fg="yellow") + str(message), err=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show  # catch_warnings puts the original back
        yield


@train_group.command(name="align")
@_train_options
def align(**kwargs) -> None:
    """Stage 1: align a modality to the frozen LLM on (signal, caption) pairs.

    \b
    Example:
      anymal train align --data imu:hapt --out runs/imu --steps 300
    """
    _run_training(1, **kwargs)


@train_group.command(name="pretrain-encoder")
@click.option("--data", "dataset", required=True, help="Registered data set, modality:name (e.g. imu:hapt).")
@click.option("--out", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for encoder.safetensors, pretrain.json and pretrain_curve.png.")
@click.option("--encoder-option", "encoder_options", multiple=True, metavar="KEY=VALUE", help="Encoder config (repeatable).")
@click.option("--steps", default=1500, show_default=True, help="Optimiser steps.")
@click.option("--batch-size", default=128, show_default=True, help="Examples per step.")
@click.option("--lr", default=2e-3, show_default=True, help="Peak learning rate.")
@click.option("--eval-every", default=250, show_default=True, help="Validate every N steps.")
@click.option("--seed", default=0, show_default=True, help="Seed.")
@click.option("--llm", default=None, help="LLM whose caption embeddings are the targets (default: the host's).")
def pretrain_encoder_command(llm: str | None, encoder_options: tuple[str, ...], **kwargs) -> None:
    """Pre-align an encoder to the LLM's caption embeddings (contrastive, no LLM in the loop).

    Cheap (the LLM only embeds each distinct caption once); start stage 1 from it with --init-encoder.

    \b
    Example:
      anymal train pretrain-encoder --data imu:hapt --out runs/imu-pre --steps 300
      anymal train align --data imu:hapt --init-encoder runs/imu-pre/encoder.safetensors --out runs/imu
    """
    from .host import AnymalHost
    from .training.pretrain import PretrainConfig, pretrain_encoder

    config = PretrainConfig(encoder=_parse_options(encoder_options, "--encoder-option"), **kwargs)
    result = pretrain_encoder(config, AnymalHost(llm))
    click.echo(f"encoder weights: {result.encoder_weights}")
    if result.val_retrieval_accuracy is not None:
        click.echo(f"validation nearest-caption accuracy: {result.val_retrieval_accuracy:.1%}")


@train_group.command(name="export")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.argument("destination", type=click.Path(file_okay=False))
def export_command(checkpoint: str, destination: str) -> None:
    """Copy CHECKPOINT's adapter package to DESTINATION without trainer state (to bundle or share it)."""
    from .training.checkpoint import export_package

    left_out = export_package(Path(checkpoint), Path(destination))
    click.echo(f"exported {checkpoint} to {destination}" + (f" (left out {', '.join(left_out)})" if left_out else ""))


@train_group.command(name="instruct")
@_train_options
@click.option("--lora-r", default=8, show_default=True, type=click.IntRange(min=0),
              help="LoRA rank on the LLM; 0 trains the projector (and encoder) only, the LLM stays frozen.")
@click.option("--lora-alpha", default=16, show_default=True, help="LoRA alpha.")
def instruct(**kwargs) -> None:
    """Stage 2: instruction tuning with LoRA (peft) on the LLM, plus the projector (and encoder).

    \b
    Example (an instruction set from a plugin's data, then stage 2 from the stage-1 adapter):
      anymal instructions --from imu:hapt --out runs/imu-instructions
      anymal train instruct --data runs/imu-instructions --init-from runs/imu/best --out runs/imu-lora
      anymal train instruct --data runs/imu-instructions --init-from runs/imu/best --lora-r 0 --out runs/imu-proj
    """
    _run_training(2, **kwargs)


@click.command(name="eval")
@click.option("--data", "dataset", required=True,
              help="Registered data set, modality:name (e.g. imu:hapt), or an instruction set folder.")
@click.option("--adapter", "adapter_ref", default=None,
              help="Adapter ref or folder to evaluate (default: the modality's bundled adapter).")
@click.option("--split", default="test", show_default=True, help="Split to answer (held-out people for imu:hapt).")
@click.option("--out", "output_dir", default=None, type=click.Path(file_okay=False),
              help="Write eval_report.json and confusion_matrix.png here.")
@click.option("--limit", default=None, type=int, help="Evaluate a class-balanced subset of this many items.")
@click.option("--batch-size", default=32, show_default=True, help="Generations per batch.")
@click.option("--max-new-tokens", default=24, show_default=True, help="Longest answer.")
@click.option("--question", default=None, help="Question to ask (default: the data set's first).")
@click.option("--no-baseline", is_flag=True, help="Skip the text-only baseline.")
@click.option("--preprocess", "build_options", multiple=True, metavar="KEY=VALUE",
              help="Data set build option (repeatable), on top of the adapter's recorded preprocessing.")
@click.option("--update-card", is_flag=True, help="Write the figures into the adapter folder's config and model card.")
@click.option("--card-prefix", default=None, metavar="NAME",
              help="With --update-card, prefix every metric name with NAME_, so that evaluations of one adapter on "
                   "several data sets or splits sit side by side in its card (e.g. --card-prefix heldout).")
@click.option("--llm", default=None, help="LLM (Hub id or folder); default $ANYMAL_LLM or the embedded one.")
def eval_command(dataset: str, adapter_ref: str | None, split: str, output_dir: str | None, limit: int | None,
                 batch_size: int, max_new_tokens: int, question: str | None, no_baseline: bool,
                 build_options: tuple[str, ...], update_card: bool, card_prefix: str | None, llm: str | None) -> None:
    """Answer every held-out item with the LLM and score the answers.

    Reports accuracy parsed from the generated text, a confusion matrix, BLEU-4 / ROUGE-L / CIDEr of the
    answers against the captions, and the text-only baseline (same question, no signal).
    """
    from .evaluation import evaluate, save_report
    from .host import AnymalHost

    if card_prefix is not None and not update_card:
        raise click.BadParameter("--card-prefix names the metrics --update-card writes: add --update-card",
                                 param_hint="--card-prefix")
    if card_prefix is not None and not re.fullmatch(r"[A-Za-z0-9_]{1,40}", card_prefix):
        raise click.BadParameter(f"{card_prefix!r}: use letters, digits and '_' (at most 40), e.g. heldout",
                                 param_hint="--card-prefix")
    from .instructions import is_instruction_set

    host = AnymalHost(llm)
    if is_instruction_set(dataset):
        _eval_instructions(host, dataset, adapter_ref, split, output_dir, limit, batch_size, max_new_tokens, question,
                           no_baseline, build_options, update_card, card_prefix)
        return
    spec = host.registry.dataset(dataset)
    name = host.load_adapter(adapter_ref) if adapter_ref else None
    report = evaluate(host, spec, split=split, adapter=name, question=question, batch_size=batch_size, limit=limit,
                      max_new_tokens=max_new_tokens, baseline=not no_baseline,
                      build_options=_parse_options(build_options, "--preprocess"))
    click.echo(report.summary())
    if output_dir:
        written = save_report(report, output_dir)
        click.echo("wrote " + ", ".join(str(p) for p in written.values()))
    if update_card:
        if not adapter_ref or not Path(adapter_ref).is_dir():
            raise click.BadParameter("--update-card needs --adapter to be a local package folder", param_hint="--update-card")
        from .card_metrics import prefixed, write_metrics

        write_metrics(Path(adapter_ref), prefixed(report.metrics_for_card(), card_prefix), command=_command_line())
        click.echo(f"updated metrics in {adapter_ref}")


def _eval_instructions(host, folder: str, adapter_ref: str | None, split: str, output_dir: str | None,
                       limit: int | None, batch_size: int, max_new_tokens: int, question: str | None,
                       no_baseline: bool, build_options: tuple[str, ...], update_card: bool,
                       card_prefix: str | None) -> None:
    """``anymal eval --data FOLDER``: the instruction set's own questions, accuracy per task."""
    from .evaluation.instructions import evaluate_instructions, save_instruction_report
    from .instructions import instruction_dataset

    if question is not None:
        raise click.BadParameter("an instruction set asks its own questions: drop --question", param_hint="--question")
    spec = instruction_dataset(folder, host.registry)
    name = host.load_adapter(adapter_ref) if adapter_ref else None
    report = evaluate_instructions(host, spec, split=split, adapter=name, batch_size=batch_size, limit=limit,
                                   max_new_tokens=max_new_tokens, baseline=not no_baseline,
                                   build_options=_parse_options(build_options, "--preprocess"))
    click.echo(report.summary())
    if output_dir:
        click.echo(f"wrote {save_instruction_report(report, output_dir)}")
    if update_card:
        if not adapter_ref or not Path(adapter_ref).is_dir():
            raise click.BadParameter("--update-card needs --adapter to be a local package folder", param_hint="--update-card")
        from .card_metrics import prefixed, write_metrics

        metrics = {f"{task}_accuracy": round(row["accuracy"], 4) for task, row in report.tasks.items()
                   if row["accuracy"] is not None}
        if report.accuracy is not None:
            metrics["accuracy"] = round(report.accuracy, 4)
        metrics["n_conversations"] = report.n
        write_metrics(Path(adapter_ref), prefixed(metrics, card_prefix or "instructions"), command=_command_line())
        click.echo(f"updated metrics in {adapter_ref}")


@click.command(name="instructions")
@click.option("--from", "dataset", required=True, help="Labelled data set to write conversations from (imu:hapt).")
@click.option("--out", "output_dir", required=True, type=click.Path(file_okay=False),
              help="New folder for train.jsonl, val.jsonl, test.jsonl and the attachment files.")
@click.option("--train", "n_train", default=3000, show_default=True, help="Training conversations.")
@click.option("--val", "n_val", default=200, show_default=True, help="Validation conversations.")
@click.option("--test", "n_test", default=600, show_default=True, help="Held-out conversations.")
@click.option("--seed", default=0, show_default=True, help="Seed for the tasks, signals and wording.")
def instructions_command(dataset: str, output_dir: str, n_train: int, n_val: int, n_test: int, seed: int) -> None:
    """Write a stage-2 instruction set from a plugin's labelled data set.

    Open questions, yes/no questions, comparisons of two attachments, "which one" questions and multi-turn
    follow-ups, each split from the data set's own split (held-out people stay held out). The format is
    JSON Lines of OpenAI-style messages whose file parts name the attachment files (docs/instructions.md).

    \b
    Example:
      anymal instructions --from imu:hapt --out runs/imu-instructions
      anymal train instruct --data runs/imu-instructions --init-from runs/imu/best --out runs/imu-lora
      anymal eval --data runs/imu-instructions --adapter runs/imu-lora/best --out runs/imu-lora/eval
    """
    from .instruction_set import write_instruction_set
    from .plugins import get_registry

    spec = get_registry().dataset(dataset)
    try:
        report = write_instruction_set(spec, output_dir, {"train": n_train, "val": n_val, "test": n_test}, seed=seed)
    except FileExistsError as exc:  # a usage error: the folder the user named holds something
        raise click.BadParameter(str(exc), param_hint="--out") from None
    for split, count in report.conversations.items():
        click.echo(f"{split}: {count} conversations, {report.files[split]} attachment files")
    click.echo("tasks: " + ", ".join(f"{task} {n}" for task, n in sorted(report.tasks.items())))
    click.echo(f"wrote {report.folder}")


def _command_line() -> str:
    import sys

    return "anymal " + " ".join(sys.argv[1:])


@click.command(name="datasets")
@click.option("--modality", default=None, help="Only the data sets of this modality.")
def datasets_command(modality: str | None) -> None:
    """List the data sets plugins registered for `anymal train` and `anymal eval` (--data NAME).

    Same as get_registry().datasets in Python (a dict of DatasetSpec by name).
    """
    from .plugins import get_registry

    registry = get_registry()
    found = registry.datasets
    specs = [spec for _, spec in sorted(found.items()) if modality is None or spec.modality == modality]
    if not specs:
        if modality is not None and found:
            known = ", ".join(sorted({spec.modality for spec in found.values()}))
            click.echo(f"No data set of modality {modality!r} is registered (data sets exist for: {known}).")
        else:
            click.echo("No data sets are registered. A modality plugin adds them through register_datasets; "
                       "see `anymal plugins`.")
        return
    for spec in specs:
        click.echo(f"{spec.name}  (modality {spec.modality}, plugin {registry.provider('dataset', spec.name)})")
        if spec.description:
            click.echo(f"    {spec.description}")
        # What evaluation and the training's validation accuracy can read out of answers.
        parser = "parse_label" if spec.parse_label else "class names matched in the answer"
        click.echo(f"    labels: {', '.join(spec.labels)} ({parser})" if spec.labels else
                   "    labels: none declared (accuracy uses the items' labels, if they carry any)")
        if spec.questions:
            click.echo(f"    questions: {len(spec.questions)}, evaluation asks {spec.questions[0]!r}")
        for key, value in spec.info.items():
            click.echo(f"    {key}: {value}")
