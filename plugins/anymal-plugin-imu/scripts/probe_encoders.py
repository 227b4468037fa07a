"""How far each IMU encoder can tell the six activities apart on the held-out people, without the LLM.

Each encoder is trained from scratch with a linear classifier on its mean feature (cross-entropy, the 18
training people, AdamW 1e-3, batch 64), and the classifier's accuracy on the 9 test people is printed after
every epoch. This is a probe of the encoder, not a result of anymal: an adapter's accuracy through the LLM is
what `anymal eval --data imu:hapt` measures. It showed that the conv + transformer encoder, not the LLM,
held the previous bundled adapter back on sitting vs standing.

    python plugins/anymal-plugin-imu/scripts/probe_encoders.py --epochs 6
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from anymal_plugin_imu import hapt
from anymal_plugin_imu.encoder import build_encoder
from anymal_plugin_imu.signals import normalise


def windows(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    signals, labels, _ = hapt.hapt_windows(split)
    return normalise(torch.from_numpy(signals)), torch.from_numpy(labels - 1)


class Probe(nn.Module):
    def __init__(self, encoder_config: dict) -> None:
        super().__init__()
        self.encoder = build_encoder(encoder_config)
        self.head = nn.Linear(self.encoder.feature_dim, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, mask = self.encoder(x)
        pooled = (features * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled)


def accuracy(model: Probe, x: torch.Tensor, y: torch.Tensor) -> tuple[float, dict[str, float]]:
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(x[i:i + 256]).argmax(-1) for i in range(0, len(x), 256)])
    model.train()
    names = [hapt.HAPT_LABELS[i + 1] for i in range(6)]
    per_class = {names[c]: (predicted[y == c] == c).float().mean().item() for c in range(6)}
    return (predicted == y).float().mean().item(), per_class


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x_train, y_train = windows("train")
    x_test, y_test = windows("test")
    for name in ("imu-conv-transformer", "imu-stats-mlp"):
        torch.manual_seed(args.seed)
        model = Probe({"name": name})
        optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.01)
        started = time.perf_counter()
        for epoch in range(1, args.epochs + 1):
            order = torch.randperm(len(x_train))
            for start in range(0, len(order), 64):
                batch = order[start:start + 64]
                loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            overall, per_class = accuracy(model, x_test, y_test)
            print(f"{name} epoch {epoch}: test accuracy {overall:.1%}, sitting {per_class['sitting']:.1%}, "
                  f"standing {per_class['standing']:.1%} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
