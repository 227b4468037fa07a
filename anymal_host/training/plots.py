"""The loss curve PNG every training run writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = ["save_loss_curve"]


def save_loss_curve(history: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Train loss (raw and smoothed) and validation loss against the step (and a ``--label-loss`` run's label
    loss); below them, when the history has it, validation accuracy against its majority-class / chance baseline."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    accuracy = [h for h in history if h.get("val_accuracy") is not None]
    if accuracy:  # a second panel below: accuracy and its baseline share the step axis with the losses
        fig, (ax, acc_ax) = plt.subplots(2, 1, figsize=(7, 6), dpi=120, sharex=True, height_ratios=(3, 2))
    else:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    if train:
        steps, losses = zip(*train)
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (per step)")
        window, smooth = _running_mean(losses)
        ax.plot(steps, smooth, color="tab:blue", linewidth=1.6, label=f"train (mean of {window})")
    if val:
        steps, losses = zip(*val)
        ax.plot(steps, losses, "o-", color="tab:orange", linewidth=1.6, label="validation")
    label = [(h["step"], h["label_loss"]) for h in history if "label_loss" in h]
    if label:  # --label-loss: the classifiers' loss, unweighted, smoothed like the train loss
        steps, losses = zip(*label)
        window, smooth = _running_mean(losses)
        ax.plot(steps, smooth, color="tab:purple", linewidth=1.2, label=f"label loss (mean of {window})")
    ax.set_ylabel("loss on caption tokens")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    if accuracy:
        steps = [h["step"] for h in accuracy]
        acc_ax.plot(steps, [h["val_accuracy"] for h in accuracy], "o-", color="tab:green", linewidth=1.6,
                    label="validation accuracy (parsed from answers)")
        acc_ax.plot(steps, [max(h["val_majority"], h["val_chance"]) for h in accuracy], "--", color="tab:gray",
                    label="majority class / chance")
        acc_ax.set_ylim(-0.02, 1.02)
        acc_ax.set_ylabel("accuracy")
        acc_ax.grid(alpha=0.3)
        acc_ax.legend()
        acc_ax.set_xlabel("step")
    else:
        ax.set_xlabel("step")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _running_mean(values: Sequence[float]) -> tuple[int, list[float]]:
    """A trailing mean over 1/25 of the run (at least one step), so that noisy per-step losses read as a trend."""
    window = max(1, len(values) // 25)
    return window, [sum(values[max(0, i - window + 1): i + 1]) / len(values[max(0, i - window + 1): i + 1])
                    for i in range(len(values))]
