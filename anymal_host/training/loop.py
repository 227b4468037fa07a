"""One training loop for AnyMAL's two stages, run through accelerate (one CPU, one GPU, or many processes).

Stage 1 (alignment) freezes the LLM and trains the projector, and the encoder when the config says so, on
(signal, caption) pairs: the user turn holds the signal and a question, the assistant turn the caption, and
the loss covers the caption tokens only. Stage 2 adds LoRA (peft) on the LLM. The data path is the one chat
uses (:func:`anymal_host.prompt.assemble`), so what is trained is what is served.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from adapters_hub import WEIGHTS_NAME, AdapterConfig, EncoderRef, LLMRef, ProjectorSpec, load_adapter_package

from ..adapter import ModalityAdapter, run_collated
from ..evaluation.selection import select_items
from ..host import AnymalHost
from ..instructions import dataset_for
from ..llm import LLMOptions
from ..modality import DatasetSpec
from ..prompt import Attachment, assemble
from .accuracy import (MAX_NEW_TOKENS, PATIENCE, NotLearningWarning, ValidationAnswers, not_learning_message,
                       not_learning_streak)
from ..errors import TrainConfigError
from .checkpoint import load_trainer_state, prune_checkpoints, save_checkpoint
from .config import TrainConfig, encoder_config
from .features import EncodedSignal, cached_bytes, collate_encoded, encode_items, encoder_is_frozen
from .heap import dequantized_weight_bytes, pin_mmap_threshold
from .label_heads import LabelHeads, load_label_heads
from .plots import save_loss_curve

__all__ = ["train", "TrainResult", "GENERIC_QUESTIONS"]

#: Questions used when a data set brings none.
GENERIC_QUESTIONS = (
    "Describe this {modality} recording.",
    "What does this {modality} signal show?",
    "What is happening here?",
)


@dataclass
class TrainResult:
    """Where a run left its outputs."""

    output_dir: Path
    best_dir: Path  # the checkpoint with the lowest validation loss (an adapter package)
    last_dir: Path  # the final checkpoint
    best_val_loss: float
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_curve: Path | None = None
    # Validation accuracy at the last validation (None when the data set has no labels or ``val_generate`` is 0).
    val_accuracy: float | None = None


def train(config: TrainConfig, host: AnymalHost | None = None, progress: bool = True) -> TrainResult:
    """Run a training job; every checkpoint under ``output_dir/checkpoints`` is a publishable adapter package."""
    run = _Run.setup(config, host, progress)
    try:
        while run.state["step"] < config.last_step:
            record = run.step()
            if run.state["step"] % config.eval_every == 0 or run.state["step"] == config.last_step:
                improved = run.validate(record)
                run.checkpoint(improved)
        return run.finish()
    finally:
        run.llm.set_gradient_checkpointing(False)  # the host's LLM serves as before once training ends


@dataclass
class _Run:
    """Everything one training run holds between its steps: the steps of :func:`train` are its methods."""

    config: TrainConfig
    accelerator: Any
    llm: Any
    spec: DatasetSpec
    modality: Any
    adapter: Any  # the ModalityAdapter, possibly wrapped by accelerate (DDP)
    adapter_config: AdapterConfig
    optimizer: Any
    scheduler: Any
    state: dict[str, Any]  # step, history, best_val_loss: what a checkpoint saves and a resume restores
    train_items: list[dict[str, Any]]
    val_items: list[dict[str, Any]]
    answers: ValidationAnswers | None  # what validation accuracy is measured on; None: no accuracy
    questions: Sequence[str]
    output: Path
    lora_dir: Path | None
    bar: Any
    label_heads: LabelHeads | None = None  # the classifiers of config.label_loss (never DDP-wrapped), else None

    @classmethod
    def setup(cls, config: TrainConfig, host: AnymalHost | None, progress: bool) -> _Run:
        """Build the adapter, optimiser and scheduler (restored from ``resume_from``), place them, load the data."""
        from ..extras import quiet_bitsandbytes, require_extra

        require_extra("train", "training", ("accelerate", "matplotlib") + (("peft",) if config.trains_lora else ()))
        if config.quantization:
            require_extra("quantize", f"training with --quantize {config.quantization}")
        quiet_bitsandbytes(config.quantization)
        from accelerate import Accelerator
        from transformers import get_cosine_schedule_with_warmup

        if config.stop_after is not None and not 1 <= config.stop_after <= config.steps:
            raise TrainConfigError(f"stop_after must be a step of the schedule, 1 to steps ({config.steps}), got "
                                   f"{config.stop_after}: leave it out to run the whole schedule")
        if config.lora_r < 0:
            raise TrainConfigError(f"lora_r must be 0 (projector-only stage 2) or a positive rank, got {config.lora_r}")
        for name in ("caption_loss", "label_loss"):
            weight = getattr(config, name)
            if not (isinstance(weight, (int, float)) and 0 <= weight < math.inf):
                raise TrainConfigError(f"{name} must be a weight of 0 (off) or more, got {weight!r}")
        if not config.caption_loss and not config.label_loss:
            raise TrainConfigError("caption_loss and label_loss are both 0: nothing would train; set --label-loss "
                                   "(labels alone) or leave --caption-loss at 1")
        if "seed" in config.preprocessing:  # before anything is built: it would only fail at the data's build
            raise TrainConfigError("the preprocessing option 'seed' clashes with the seed training passes to the data "
                                   "set's build: set TrainConfig.seed / --seed instead")
        accelerator = Accelerator(cpu=not torch.cuda.is_available())
        host = host or AnymalHost(llm_options=LLMOptions(quantization=config.quantization))
        llm = host.llm
        if llm.device.type == "cpu":
            # A quantized LLM's weights are dequantized into temporaries at every step: mapped on their own, so
            # that glibc's heap does not grow with what they free (see anymal_host/training/heap.py). A float
            # LLM has none: 0 pins nothing.
            pin_mmap_threshold(dequantized_weight_bytes(llm.model, llm.dtype))
        spec = dataset_for(config.dataset, host.registry)
        modality = host.registry.modality(spec.modality)
        output = Path(config.output_dir)
        output.mkdir(parents=True, exist_ok=True)

        if config.init_from and not config.encoder:
            # Starting from a package: its encoder unless the run names one (a mismatch is refused below).
            config = dataclasses.replace(config, encoder=_package_encoder(Path(config.init_from)))
        adapter_config = _adapter_config(config, host, spec)
        torch.manual_seed(config.seed)
        adapter = ModalityAdapter.from_config(adapter_config, host.registry)
        # Record how many tokens the projector really emits (one per encoder step for linear / MLP projectors).
        adapter_config.token_mode, adapter_config.num_tokens = adapter.token_facts()
        if config.init_from:
            _init_from_package(adapter, Path(config.init_from), host)
        if config.init_encoder:
            _init_encoder(adapter, Path(config.init_encoder))
        adapter.set_trainable()
        lora_dir = output / ".lora" if config.trains_lora else None
        if config.trains_lora:
            _add_lora(llm, config)

        if config.resume_from:
            _, tensors = load_adapter_package(Path(config.resume_from), installed_modalities=host.registry.modalities,
                                              host_hidden_size=llm.hidden_size, host_fingerprint=llm.fingerprint)
            adapter.load_state_dict(tensors, strict=False)
            if config.trains_lora:
                _restore_lora(llm, Path(config.resume_from))

        if not config.quantization:  # bitsandbytes already placed the quantized LLM
            llm.model.to(accelerator.device)
        checkpointing = config.gradient_checkpointing
        if checkpointing is None:  # QLoRA's recipe: a quantized LLM trains with its activations recomputed
            checkpointing = bool(config.quantization)
        llm.set_gradient_checkpointing(checkpointing)
        adapter = accelerator.prepare(adapter)

        # The data is built with the preprocessing the package records, so the adapter is trained on what it serves.
        train_items = _limit(spec.build("train", seed=config.seed, **config.preprocessing), config.max_train_items,
                             config.seed)
        # The evaluation's class-balanced pick: seeded and spread over the whole split, not the first items of
        # each class (on data ordered by person, those would all come from one person).
        val_split = spec.build("val", seed=config.seed, **config.preprocessing)
        if config.cache_features and encoder_is_frozen(accelerator.unwrap_model(adapter)):
            # A frozen encoder gives each item the same features at every step: compute them once, here.
            train_items, val_split = encode_items(accelerator.unwrap_model(adapter), modality,
                                                  [train_items, val_split], config.batch_size,
                                                  progress=progress and accelerator.is_main_process)
            _log(accelerator, f"frozen encoder: features of {len(train_items) + len(val_split)} items computed once "
                              f"({cached_bytes([train_items, val_split]) / 2**20:,.0f} MiB kept)")
        val_items = select_items(val_split, config.val_items, config.seed)
        answers = ValidationAnswers.pick(spec, val_split, config.val_generate, config.seed)
        questions = spec.questions or tuple(q.format(modality=spec.modality) for q in GENERIC_QUESTIONS)

        # The optimiser comes after the data: the label classifiers (--label-loss) are sized by the labels the
        # training items carry.
        label_heads = None
        if config.label_loss:
            # Not wrapped for DDP: a batch asks only some of the questions, and DDP refuses parameters that a
            # step leaves unused. step() averages their gradients across processes instead.
            label_heads = LabelHeads(train_items, adapter_config.num_tokens, llm.hidden_size,
                                     fixed=adapter_config.token_mode == "fixed").to(accelerator.device)
            _log(accelerator, f"label loss x {config.label_loss}: a classifier per question ({label_heads.describe()})")
        unwrapped = accelerator.unwrap_model(adapter)
        groups = [{"params": list(unwrapped.projector.parameters()), "lr": config.lr}]
        if config.train_encoder:
            groups.append({"params": list(unwrapped.encoder.parameters()), "lr": config.encoder_lr or config.lr})
        if config.trains_lora:
            groups.append({"params": [p for p in llm.model.parameters() if p.requires_grad], "lr": config.lr})
        if label_heads is not None:
            groups.append({"params": list(label_heads.parameters()), "lr": config.lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
        optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
        state: dict[str, Any] = {"step": 0, "history": [], "best_val_loss": math.inf}
        if config.resume_from:
            if label_heads is not None:
                load_label_heads(Path(config.resume_from), label_heads)
            state = load_trainer_state(Path(config.resume_from), optimizer, scheduler)
        _log(accelerator, f"training {adapter_config.name}: {len(train_items)} train / {len(val_items)} val examples, "
                          f"{_count(adapter, trainable=True):,} trainable adapter parameters"
                          + (f" + {sum(p.numel() for p in llm.model.parameters() if p.requires_grad):,} LoRA"
                             if config.trains_lora else "") + f", stage {config.stage}, "
                          f"device {accelerator.device}, {accelerator.num_processes} process(es)")
        if answers is not None:
            _log(accelerator, f"validation accuracy: {len(answers.items)} answers to {answers.question!r}, classes "
                              f"{', '.join(answers.classes.labels)}")
        else:
            why = ("--val-generate is 0" if config.val_generate <= 0
                   else "instruction conversations are scored by `anymal eval --data FOLDER`"
                   if spec.info.get("format") == "jsonl" else "the validation items carry no labels")
            _log(accelerator, f"validation accuracy: off ({why})")
        bar = tqdm(total=config.last_step, initial=state["step"], desc="training", unit="step",
                   disable=not progress or not accelerator.is_main_process)
        return cls(config, accelerator, llm, spec, modality, adapter, adapter_config, optimizer, scheduler, state,
                   train_items, val_items, answers, questions, output, lora_dir, bar, label_heads)

    def loss_on(self, items: Sequence[dict[str, Any]], rng: random.Random, with_labels: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean loss on the captions of ``items``, each asked one of the questions (chosen by ``rng``), and, with
        ``with_labels`` and label classifiers, their label loss (else None)."""
        conversations = [_conversation(item, self.spec, self.questions, rng) for item in items]
        encoded: list[torch.Tensor] = []

        def encode(attachments: list[Attachment]) -> list[torch.Tensor]:
            tokens = _encode(self.adapter, self.modality, attachments)
            encoded.extend(tokens)
            return tokens

        batch = assemble(self.llm, conversations, encode, train=True)
        loss = self.llm.forward(batch.inputs_embeds, batch.attention_mask, labels=batch.labels).loss
        label_loss = None
        # one attachment per item (data set items): the tokens line up with the items
        if with_labels and self.label_heads is not None and len(encoded) == len(items):
            label_loss = self.label_heads.loss(items, encoded)
        return loss, label_loss

    def step(self) -> dict[str, Any]:
        """One optimiser step on this step's batch; returns (and appends to the history) its record."""
        config, accelerator = self.config, self.accelerator
        step = self.state["step"]
        batch_items = _batch_for_step(self.train_items, step, config.batch_size, config.seed)
        per_process = max(1, config.batch_size // accelerator.num_processes)
        mine = batch_items[accelerator.process_index::accelerator.num_processes][:per_process]
        self.adapter.train()
        started = time.perf_counter()
        if config.caption_loss:
            loss, label_loss = self.loss_on(mine, random.Random(config.seed * 1_000_003 + step), with_labels=True)
        else:  # labels alone: the LLM does not run
            loss, label_loss = None, self.label_loss_on(mine)
        total = sum(weight * value for weight, value in ((config.caption_loss, loss), (config.label_loss, label_loss))
                    if value is not None)
        accelerator.backward(total)
        if self.label_heads is not None and accelerator.num_processes > 1:
            for p in self.label_heads.parameters():  # what DDP does for the adapter: every process, the same step
                p.grad = accelerator.reduce(p.grad if p.grad is not None else torch.zeros_like(p), "mean")
        accelerator.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state["step"] = step + 1
        record: dict[str, Any] = {"step": self.state["step"]}
        # the caption loss stays "loss" (absent when it is off), so curves and validation compare across runs
        for key, value in (("loss", loss), ("label_loss", label_loss)):
            if value is not None:
                record[key] = accelerator.reduce(value.detach(), "mean").item()
        record.update(lr=self.scheduler.get_last_lr()[0], seconds=round(time.perf_counter() - started, 3))
        self.state["history"].append(record)
        self.bar.update()
        self.bar.set_postfix({key: f"{record[key]:.3f}" for key in ("loss", "label_loss") if key in record})
        return record

    def label_loss_on(self, items: Sequence[dict[str, Any]]) -> torch.Tensor:
        """The label loss of ``items`` from their tokens alone (``caption_loss`` 0: no LLM in the step)."""
        attachments = [_attachment(item, self.spec) for item in items]
        return self.label_heads.loss(items, _encode(self.adapter, self.modality, attachments))

    def validate(self, record: dict[str, Any]) -> bool:
        """Validation loss on the fixed validation items, and the validation accuracy when there is one, into
        ``record``; warns when the accuracy shows the adapter is not learning. Returns whether the loss is the
        best yet."""
        self.adapter.eval()
        losses, weights = [], []
        rng = random.Random(self.config.seed)  # the same questions every time, so validation losses compare
        with torch.no_grad():
            for start in range(0, len(self.val_items), self.config.batch_size):
                chunk = self.val_items[start:start + self.config.batch_size]
                losses.append(self.loss_on(chunk, rng)[0].item())
                weights.append(len(chunk))
        val_loss = sum(l * w for l, w in zip(losses, weights)) / max(1, sum(weights))
        record["val_loss"] = val_loss
        # Without the caption loss the adapter is not trained to lower it: best/ is then the newest checkpoint.
        improved = val_loss < self.state["best_val_loss"] or not self.config.caption_loss
        if improved:
            self.state["best_val_loss"] = val_loss
        line = (f"step {self.state['step']}: "
                + ", ".join(f"{name} {record[key]:.3f}" for key, name in (("loss", "train loss"),
                                                                           ("label_loss", "label loss")) if key in record)
                + f", validation loss {val_loss:.3f}" + (" (best so far)" if improved else ""))
        streak = 0
        if self.answers is not None:
            with torch.no_grad():
                record.update(self.answers.measure(self.generate, self.config.batch_size))
            # Derived from the history, so a resumed run counts the validations before the resume too.
            streak = not_learning_streak(self.state["history"])
            record["not_learning"] = streak >= PATIENCE
            line += (f", validation accuracy {record['val_accuracy']:.1%} on {record['val_answers']} answers "
                     f"(chance {record['val_chance']:.1%}, majority class {record['val_majority']:.1%})")
        if self.accelerator.is_main_process:
            self.bar.write(line)
            if streak == PATIENCE:  # once per stretch of not learning, not at every later validation
                warnings.warn(not_learning_message(record, streak, train_encoder=self.config.train_encoder,
                                                   init_encoder=bool(self.config.init_encoder)),
                              NotLearningWarning, stacklevel=2)
        return improved

    def generate(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        """Greedy answers through the adapter being trained: ``host.generate``'s path, with this adapter."""
        adapter = self.accelerator.unwrap_model(self.adapter)
        batch = assemble(self.llm, conversations, lambda atts: _encode(adapter, self.modality, atts))
        return self.llm.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=MAX_NEW_TOKENS,
                                 do_sample=False)

    def checkpoint(self, improved: bool) -> None:
        """Write this step's checkpoint, ``last/`` (and ``best/`` when ``improved``) and the loss curve so far."""
        if self.accelerator.is_main_process:
            _write_checkpoints(self.output, self.accelerator.unwrap_model(self.adapter), self.adapter_config, self.llm,
                               self.lora_dir, self.optimizer, self.scheduler, self.state, self.config, improved,
                               self.label_heads)
        self.accelerator.wait_for_everyone()

    def finish(self) -> TrainResult:
        """Close the progress bar, write the final loss curve and ``history.json``."""
        self.bar.close()
        curve = self.output / "loss_curve.png"
        if self.accelerator.is_main_process:
            save_loss_curve(self.state["history"], curve, _curve_title(self.adapter_config, self.config))
            (self.output / "history.json").write_text(json.dumps(self.state["history"], indent=1))
        accuracies = [h["val_accuracy"] for h in self.state["history"] if h.get("val_accuracy") is not None]
        return TrainResult(self.output, self.output / "best", self.output / "last", self.state["best_val_loss"],
                           self.state["history"], curve, accuracies[-1] if accuracies else None)


def _adapter_config(config: TrainConfig, host: AnymalHost, spec: DatasetSpec) -> AdapterConfig:
    modality = host.registry.modality(spec.modality)
    encoder_options = encoder_config(modality, config.encoder)
    name = encoder_options.pop("name")
    encoder = modality.build_encoder({"name": name, **encoder_options})
    feature_dim = getattr(encoder, "feature_dim")
    # A frozen encoder whose plugin ships its pretrained weights is not copied into every package (tens of MB
    # each): hosts build it from the plugin, as the package says. Trained or re-initialised encoders are kept.
    plugin_supplies = (getattr(encoder, "pretrained_weights", None) is True and not config.train_encoder
                       and not config.init_encoder)
    del encoder
    llm = host.llm
    return AdapterConfig(
        name=config.name or f"{modality.name}-{config.projector}",
        modality=modality.name,
        encoder=EncoderRef(name=name, config=encoder_options, weights_included=not plugin_supplies,
                           trainable=config.train_encoder),
        projector=ProjectorSpec(type=config.projector, in_dim=feature_dim, out_dim=llm.hidden_size,
                                options=dict(config.projector_options)),
        llm=LLMRef(**llm.describe()),
        num_tokens=config.num_tokens,
        preprocessing=dict(config.preprocessing),
        # Provenance lives in the config so it survives any later rewrite of the model card.
        description=f"Stage {config.stage} {'alignment' if config.stage == 1 else 'instruction tuning'} on "
                    f"{config.dataset}: {_steps_text(config)}, batch {config.batch_size}, lr {config.lr}, seed {config.seed}"
                    + (", encoder initialised from a contrastive pre-alignment" if config.init_encoder else "") + ".",
    )


def _package_encoder(source: Path) -> dict[str, Any]:
    """The encoder config (``name`` included) of the adapter package at ``source``; ``{}`` when it has none to
    read (``_init_from_package`` then says what is wrong with the folder)."""
    from adapters_hub import read_package_config

    try:
        encoder = read_package_config(source).encoder
    except Exception:  # noqa: BLE001 - reported with the fix by _init_from_package's full checks
        return {}
    return {"name": encoder.name, **encoder.config}


def _init_from_package(adapter: ModalityAdapter, source: Path, host: AnymalHost) -> None:
    """Copy a trained adapter package's projector and encoder weights into this run's fresh adapter, after the
    checks a host runs before serving the package (for this LLM, safetensors, sizes, a working example)."""
    from ..loading import build_adapter

    if not source.is_dir():
        raise TrainConfigError(f"--init-from {source}: expected an adapter package folder (a run's best/ or "
                               f"last/, or a pulled package)")
    trained = build_adapter(source, host.registry, host.facts)
    theirs, ours = trained.config, adapter.config
    differences = [f"{what}: package {a!r}, this run {b!r}" for what, a, b in (
        ("modality", theirs.modality, ours.modality),
        ("encoder", (theirs.encoder.name, theirs.encoder.config), (ours.encoder.name, ours.encoder.config)),
        ("projector", (theirs.projector.type, theirs.projector.in_dim, theirs.projector.options),
         (ours.projector.type, ours.projector.in_dim, ours.projector.options)),
        ("tokens", theirs.num_tokens, ours.num_tokens)) if a != b]
    if differences:
        raise TrainConfigError(f"--init-from {source}: adapter {theirs.name!r} was trained with another setup ("
                               + "; ".join(differences) + "): pass the same --data modality, --encoder-option, "
                               "--projector, --projector-option and --num-tokens it was trained with")
    adapter.load_state_dict(trained.state_dict(), strict=True)
    # adapter.config is the run's AdapterConfig, written into every checkpoint: say where training started.
    ours.description = f"{ours.description[:-1]}, initialised from adapter {theirs.name!r} ({theirs.description})"


def _init_encoder(adapter: ModalityAdapter, source: Path) -> None:
    """Copy ``encoder.*`` weights from a safetensors file or an adapter package into a fresh adapter."""
    from safetensors.torch import load_file

    path = source / WEIGHTS_NAME if source.is_dir() else source
    if path.suffix != ".safetensors" or not path.is_file():
        raise FileNotFoundError(f"--init-encoder {source}: expected a .safetensors file or an adapter package folder")
    weights = {k[len("encoder."):]: v for k, v in load_file(str(path)).items() if k.startswith("encoder.")}
    expected = adapter.encoder.state_dict()
    if set(weights) != set(expected) or any(weights[k].shape != expected[k].shape for k in expected):
        raise ValueError(f"--init-encoder {source}: its encoder tensors do not match this encoder config "
                         f"({len(weights)} tensors vs {len(expected)} expected): pre-align with the same encoder options")
    adapter.encoder.load_state_dict(weights, strict=True)


def _add_lora(llm: Any, config: TrainConfig) -> None:
    from peft import LoraConfig, get_peft_model

    if llm.loras.names:
        raise TrainConfigError(f"this host's LLM serves hot-loaded LoRAs ({', '.join(sorted(llm.loras.names))}): "
                               f"stage 2 trains its own LoRA on the LLM, so train on a host without them "
                               f"(unload them, or start a new AnymalHost)")

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=list(config.lora_target_modules),
                      lora_dropout=0.05, task_type="CAUSAL_LM")
    llm.model = get_peft_model(llm.model, lora)


def _restore_lora(llm: Any, checkpoint: Path) -> None:
    """Put a stage-2 checkpoint's LoRA weights back into the freshly wrapped LLM."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = checkpoint / "lora" / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{checkpoint} has no lora/adapter_model.safetensors: resume stage 2 from a stage-2 "
                                "checkpoint (a stage-1 package starts stage 2 with --init-encoder instead)")
    result = set_peft_model_state_dict(llm.model, load_file(str(weights)))
    if result.unexpected_keys:
        raise ValueError(f"{weights} does not fit this LoRA config ({len(result.unexpected_keys)} unexpected "
                         "tensors): resume with the same --lora-r and target modules")


def _attachment(item: dict[str, Any], spec: DatasetSpec) -> Attachment:
    """A data set item's signal as an attachment: already preprocessed by the data set's build."""
    return Attachment(item["signal"], modality=spec.modality, preprocessed=True)


def _conversation(item: dict[str, Any], spec: DatasetSpec, questions: Sequence[str], rng: random.Random) -> list[dict[str, Any]]:
    if "messages" in item:  # an instruction set's conversation (anymal_host.instructions): used as written
        return item["messages"]
    # An item's own questions ("question", or a choice of "questions") win over the data set's: one data set
    # can then mix tasks (shape, colour, count) with a question that fits each caption.
    own = item.get("questions") or ([item["question"]] if item.get("question") else None)
    return [
        {"role": "user", "content": [_attachment(item, spec),
                                     rng.choice(list(own) if own else questions)]},
        {"role": "assistant", "content": item["caption"]},
    ]


def _encode(adapter: Any, modality: Any, attachments: list[Attachment]) -> list[torch.Tensor]:
    # through the (possibly DDP-wrapped) training module, so gradients are synchronised across processes
    sources = [a.source for a in attachments]
    if sources and all(isinstance(s, EncodedSignal) for s in sources):  # encoded once: the projector only
        return run_collated(adapter, *collate_encoded(sources), encoded=True)
    return run_collated(adapter, *modality.collate(sources))


def _write_checkpoints(output: Path, adapter: ModalityAdapter, config: AdapterConfig, llm: Any, lora_dir: Path | None,
                       optimizer: Any, scheduler: Any, state: dict[str, Any], train_config: TrainConfig,
                       improved: bool, label_heads: LabelHeads | None = None) -> None:
    if lora_dir is not None:
        shutil.rmtree(lora_dir, ignore_errors=True)
        llm.model.save_pretrained(lora_dir)
    tensors = adapter.weights_for_saving()
    record = state["history"][-1]
    config.metrics = {"val_loss": round(record["val_loss"], 4), "step": state["step"]}
    if record.get("val_accuracy") is not None:
        config.metrics["val_accuracy"] = round(record["val_accuracy"], 4)
    command = "align" if train_config.stage == 1 else "instruct"
    readme = (f"Trained with `anymal train {command}` ({_steps_text(train_config)}, batch {train_config.batch_size}, "
              f"seed {train_config.seed}) on `{train_config.dataset}`.")
    step_dir = output / "checkpoints" / f"step-{state['step']:06d}"
    saved_state = {**state, "train_config": train_config.to_dict()}
    save_checkpoint(step_dir, config, tensors, lora_dir=lora_dir, optimizer=optimizer, scheduler=scheduler,
                    state=saved_state, readme_extra=readme, label_heads=label_heads)
    save_checkpoint(output / "last", config, tensors, lora_dir=lora_dir, optimizer=optimizer, scheduler=scheduler,
                    state=saved_state, readme_extra=readme, label_heads=label_heads)
    if improved:
        save_checkpoint(output / "best", config, tensors, lora_dir=lora_dir, optimizer=optimizer, scheduler=scheduler,
                        state=saved_state, readme_extra=readme, label_heads=label_heads)
    prune_checkpoints(output / "checkpoints", train_config.keep_checkpoints)
    save_loss_curve(state["history"], output / "loss_curve.png", _curve_title(config, train_config))


def _steps_text(config: TrainConfig) -> str:
    """How long a run trained, for its provenance: ``400 steps``, or ``1000 of 2500 steps`` when it stopped
    part-way through its schedule (``stop_after``)."""
    if config.last_step < config.steps:
        return f"{config.last_step} of {config.steps} steps"
    return f"{config.steps} steps"


def _curve_title(adapter_config: AdapterConfig, config: TrainConfig) -> str:
    return f"{adapter_config.name}: stage {config.stage} on {config.dataset}"


def _batch_for_step(items: Sequence[Any], step: int, batch_size: int, seed: int) -> list[Any]:
    """The examples of one step: a fresh seeded permutation per epoch, so resuming repeats the same order."""
    per_epoch = max(1, len(items) // batch_size)
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [items[i] for i in order[index * batch_size:(index + 1) * batch_size]]


def _limit(items: Sequence[Any], limit: int | None, seed: int) -> list[Any]:
    if limit is None or limit >= len(items):
        return list(items)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()[:limit]
    return [items[i] for i in sorted(order)]


def _count(module: torch.nn.Module, trainable: bool) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def _log(accelerator: Any, message: str) -> None:
    if accelerator.is_main_process:
        tqdm.write(message)
