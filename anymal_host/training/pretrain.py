"""Contrastive pre-alignment of an encoder to text, before stage 1 (as IMU2CLIP aligns IMU to CLIP text).

The text side is the frozen host LLM itself: a caption's embedding is the mean of the LLM's last hidden states
over its tokens, computed once per distinct caption. The signal side is the encoder's masked mean feature
through a small linear head (discarded afterwards). Many captions in a batch describe the same thing in
different words, so plain InfoNCE would push true matches apart; instead each signal's target is a softmax
over its caption's similarity to every caption in the batch (soft CLIP targets). This trains only the encoder,
without the LLM in the loop, so it costs seconds per thousand examples and makes stage 1 short.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..host import AnymalHost
from .config import encoder_config
from .plots import save_loss_curve

__all__ = ["PretrainConfig", "PretrainResult", "pretrain_encoder", "ENCODER_WEIGHTS"]

ENCODER_WEIGHTS = "encoder.safetensors"


@dataclass
class PretrainConfig:
    """Encoder pre-alignment run."""

    # Registered data set, ``modality:name``.
    dataset: str
    # Output folder: ``encoder.safetensors`` (``encoder.*`` tensors), ``pretrain.json``, ``pretrain_curve.png``.
    output_dir: str
    # Encoder config (``name`` + options), merged into the modality's default (as ``TrainConfig.encoder``).
    encoder: dict[str, Any] = field(default_factory=dict)
    # Optimiser steps.
    steps: int = 1500
    # Examples per step (large batches give the contrastive loss more captions to tell apart).
    batch_size: int = 128
    # Peak learning rate (AdamW, warm-up then cosine).
    lr: float = 2e-3
    # Softmax temperature of signal-to-caption logits.
    temperature: float = 0.07
    # Temperature of the caption-to-caption targets (small: near-identical captions share the target).
    target_temperature: float = 0.02
    # Validate every this many steps.
    eval_every: int = 250
    # Seed.
    seed: int = 0


@dataclass
class PretrainResult:
    encoder_weights: Path
    history: list[dict[str, Any]]
    val_retrieval_accuracy: float | None  # nearest caption names the right label (when items carry labels)


def pretrain_encoder(config: PretrainConfig, host: AnymalHost | None = None, progress: bool = True) -> PretrainResult:
    """Pre-align a modality's encoder to the LLM's caption embeddings; writes ``encoder.safetensors``."""
    from transformers import get_cosine_schedule_with_warmup

    host = host or AnymalHost()
    llm = host.llm
    spec = host.registry.dataset(config.dataset)
    modality = host.registry.modality(spec.modality)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = encoder_config(modality, config.encoder)
    torch.manual_seed(config.seed)
    encoder = modality.build_encoder(settings)
    head = torch.nn.Linear(encoder.feature_dim, llm.hidden_size)
    train_items, val_items = spec.build("train", seed=config.seed), spec.build("val", seed=config.seed)
    captions = sorted({item["caption"] for item in [*train_items, *val_items]})
    bank = _caption_embeddings(llm, captions)
    index = {caption: i for i, caption in enumerate(captions)}
    tqdm.write(f"pre-aligning the {modality.name} encoder ({sum(p.numel() for p in encoder.parameters()):,} parameters) "
               f"to {len(captions)} distinct captions embedded by {llm.name}")

    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(100, config.steps // 10), config.steps)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    accuracy = None
    for step in tqdm(range(1, config.steps + 1), desc="pre-aligning encoder", unit="step", disable=not progress):
        encoder.train()
        picks = torch.randint(len(train_items), (config.batch_size,), generator=generator).tolist()
        batch = [train_items[i] for i in picks]
        loss = _soft_clip_loss(_signal_embeddings(encoder, head, modality, batch), batch, bank, index, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        record: dict[str, Any] = {"step": step, "loss": loss.item()}
        if step % config.eval_every == 0 or step == config.steps:
            val_loss, accuracy = _validate(encoder, head, modality, val_items, bank, index, captions, config)
            record.update(val_loss=val_loss, val_retrieval_accuracy=accuracy)
            tqdm.write(f"step {step}: loss {loss.item():.3f}, validation loss {val_loss:.3f}"
                       + (f", nearest-caption accuracy {accuracy:.1%}" if accuracy is not None else ""))
        history.append(record)

    weights = out / ENCODER_WEIGHTS
    save_file({f"encoder.{k}": v.detach().contiguous() for k, v in encoder.state_dict().items()}, str(weights),
              metadata={"encoder": json.dumps(settings), "llm_fingerprint": llm.fingerprint})
    (out / "pretrain.json").write_text(json.dumps({"config": asdict(config), "encoder": settings,
                                                   "val_retrieval_accuracy": accuracy, "history": history}, indent=1))
    save_loss_curve(history, out / "pretrain_curve.png", f"{modality.name} encoder pre-alignment on {config.dataset}")
    return PretrainResult(weights, history, accuracy)


@torch.no_grad()
def _caption_embeddings(llm: Any, captions: Sequence[str]) -> torch.Tensor:
    """Mean last hidden state per caption, centred over the captions (removes what all of them share, such
    as 'The person is'), L2-normalised."""
    rows = []
    for caption in captions:
        ids = torch.tensor([llm.tokenizer(caption, add_special_tokens=False)["input_ids"]])
        hidden = llm.model(inputs_embeds=llm.embed(ids), output_hidden_states=True).hidden_states[-1][0]
        rows.append(hidden.float().mean(0).cpu())
    bank = torch.stack(rows)
    return F.normalize(bank - bank.mean(0, keepdim=True), dim=-1)


def _signal_embeddings(encoder: Any, head: Any, modality: Any, items: Sequence[dict[str, Any]]) -> torch.Tensor:
    signals, mask = modality.collate([item["signal"] for item in items])
    features, feature_mask = encoder(signals, mask)
    weights = feature_mask.unsqueeze(-1).to(features.dtype)
    pooled = (features * weights).sum(1) / weights.sum(1).clamp(min=1)
    return F.normalize(head(pooled), dim=-1)


def _soft_clip_loss(signal: torch.Tensor, batch: Sequence[dict[str, Any]], bank: torch.Tensor,
                    index: dict[str, int], config: PretrainConfig) -> torch.Tensor:
    text = bank[[index[item["caption"]] for item in batch]]
    logits = signal @ text.T / config.temperature
    targets = F.softmax(text @ text.T / config.target_temperature, dim=-1)
    # symmetric, as CLIP: signals -> captions and captions -> signals
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


@torch.no_grad()
def _validate(encoder: Any, head: Any, modality: Any, items: Sequence[dict[str, Any]], bank: torch.Tensor,
              index: dict[str, int], captions: Sequence[str], config: PretrainConfig) -> tuple[float, float | None]:
    encoder.eval()
    losses, hits, counted = [], 0, 0
    label_of = {item["caption"]: item.get("label") for item in items}
    for start in range(0, len(items), config.batch_size):
        chunk = items[start:start + config.batch_size]
        signal = _signal_embeddings(encoder, head, modality, chunk)
        losses.append(_soft_clip_loss(signal, chunk, bank, index, config).item())
        nearest = (signal @ bank.T).argmax(-1).tolist()
        for item, best in zip(chunk, nearest):
            if item.get("label") is not None and captions[best] in label_of:
                hits += label_of[captions[best]] == item["label"]
                counted += 1
    accuracy = hits / counted if counted else None
    return sum(losses) / max(1, len(losses)), accuracy
