"""What a training run does, as one dataclass (the CLI's flags map onto it one to one)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["TrainConfig", "encoder_config"]


@dataclass
class TrainConfig:
    """Stage 1 (alignment: LLM frozen) or stage 2 (instruction tuning: + LoRA on the LLM) of AnyMAL."""

    # Registered data set, ``modality:name`` (``imu:hapt``); its modality is the adapter's.
    dataset: str
    # Folder for checkpoints (each an adapter package), ``best/``, the loss curve and the history.
    output_dir: str
    # Adapter name written into the package; default ``<modality>-<projector>``.
    name: str | None = None
    # 1 = alignment (projector, and the encoder if ``train_encoder``); 2 = adds LoRA on the LLM (``lora_r``).
    stage: int = 1
    # Encoder config passed to the modality's ``build_encoder``: merged into the modality's ``default_encoder``
    # (``{"width": 32}`` changes one option of the default encoder); a different ``name`` replaces the default.
    encoder: dict[str, Any] = field(default_factory=dict)
    # Start the encoder from these weights: a safetensors file with ``encoder.*`` tensors (what
    # ``anymal train pretrain-encoder`` writes) or an adapter package folder.
    init_encoder: str | None = None
    # Start the projector (and the encoder) from this adapter package's weights, with a fresh schedule: a
    # stage-1 ``best/`` for stage 2, as AnyMAL does, or a trained adapter to go on training on other data. The
    # package must be for this LLM and have this run's modality, encoder, projector and token count; with no
    # ``encoder`` given, the package's encoder config is used.
    init_from: str | None = None
    # Whether the encoder trains too (it starts from the plugin's weights, or from scratch if it ships none).
    train_encoder: bool = True
    # Registered projector type: ``linear``, ``mlp``, ``perceiver`` or one a plugin adds.
    projector: str = "linear"
    # Extra projector options (``depth``, ``heads``, ``hidden_dim``...).
    projector_options: dict[str, Any] = field(default_factory=dict)
    # Tokens per attachment (perceiver: exact; linear/mlp: the encoder's output steps decide).
    num_tokens: int = 64
    # Options the modality's ``load``/``preprocess`` get at inference, recorded in the package; training passes
    # them to ``DatasetSpec.build(split, seed=..., **preprocessing)`` too, so the data matches what is served.
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # When the encoder is frozen, encode every training and validation item once before the first step instead
    # of at every step (same result, most of a step's time saved with a pretrained encoder). Costs the memory of
    # the features (logged); False runs the encoder at each step.
    cache_features: bool = True
    # Optimiser steps in all: the length of the learning-rate schedule.
    steps: int = 400
    # End the run after this step (None: after ``steps``), with the learning-rate schedule still that of
    # ``steps``: a long schedule can be run part of the way (to fit a time budget, or to take a checkpoint of its
    # middle) and continued later with ``resume_from``. The last step is validated and checkpointed.
    stop_after: int | None = None
    # Examples per step (split across processes when accelerate runs several).
    batch_size: int = 16
    # Peak learning rate of the projector (AdamW, linear warm-up then cosine decay).
    lr: float = 1e-3
    # Peak learning rate of the encoder, when it trains; None = ``lr``.
    encoder_lr: float | None = None
    # Weight of the label loss beside the caption loss: a linear classifier per question reads each training
    # item's ``label`` from the adapter's tokens, and its cross-entropy times this weight is added (the
    # classifiers are dropped afterwards; see training/label_heads.py). Makes the projector keep what the labels
    # need where the caption loss alone lets it lose it (image counts). 0 turns it off.
    label_loss: float = 0.0
    # Weight of the caption loss (the LLM's loss on the answer). 0, with ``label_loss``, trains the tokens on the
    # labels alone and does not run the LLM in the steps (several times faster): a pre-alignment to start a
    # normal run from (``init_from``). Validation still reports the caption loss, and ``best/`` is then the
    # newest checkpoint.
    caption_loss: float = 1.0
    # AdamW weight decay.
    weight_decay: float = 0.01
    # Warm-up steps.
    warmup_steps: int = 20
    # Validate (and write a checkpoint) every this many steps.
    eval_every: int = 50
    # Validation examples used for the validation loss (fixed subset, class-balanced when labels exist).
    val_items: int = 96
    # Validation items answered by generation at each validation, for the validation accuracy (a fixed,
    # class-balanced subset; only when the items carry labels). 0 turns it off. Costs one greedy answer per item.
    val_generate: int = 32
    # Train on at most this many examples (None = all); handy for quick runs.
    max_train_items: int | None = None
    # Seed for initialisation, data order and question choice.
    seed: int = 0
    # LoRA rank for stage 2 (peft); 0 = projector-only stage 2 (the LLM stays frozen); ignored in stage 1.
    lora_r: int = 8
    # LoRA alpha for stage 2.
    lora_alpha: int = 16
    # LLM modules LoRA wraps in stage 2.
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    # Load the LLM 4-bit / 8-bit (bitsandbytes) for training; the adapter stays full precision.
    quantization: str | None = None
    # Recompute the LLM's layer activations in the backward pass instead of keeping them (less memory, about a
    # third more time per step): the activations of the frozen LLM, which gradients flow through to reach the
    # projector, are most of a step's memory. None = on when the LLM is quantized (as QLoRA trains), else off.
    gradient_checkpointing: bool | None = None
    # A checkpoint folder to continue from (its weights, optimiser state, step and history).
    resume_from: str | None = None
    # Keep at most this many step checkpoints besides ``best/`` (oldest removed first).
    keep_checkpoints: int = 3

    @property
    def last_step(self) -> int:
        """The step this run ends after: ``stop_after`` when set, else the schedule's ``steps``."""
        return self.stop_after or self.steps

    @property
    def trains_lora(self) -> bool:
        """Whether this run trains a LoRA on the LLM: stage 2 with a rank above 0."""
        return self.stage == 2 and self.lora_r > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encoder_config(modality: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The encoder config a run builds: ``options`` merged into ``modality.default_encoder``, so that
    ``--encoder-option width=32`` alone changes one option of the default encoder. Options naming another
    encoder replace the default (its options belong to a different encoder). The result always has a ``name``."""
    default = dict(modality.default_encoder)
    if "name" in options and options["name"] != default.get("name"):
        merged = dict(options)
    else:
        merged = {**default, **options}
    if "name" not in merged:
        given = ", ".join(f"{k}={v}" for k, v in options.items())
        raise ValueError(f"modality {modality.name!r} declares no default encoder, so the encoder config needs a "
                         f"'name': pass --encoder-option name=ENCODER" + (f" with {given}" if given else "")
                         + " (in Python, TrainConfig(encoder={'name': ..., ...}))")
    return merged
