"""Can a Perceiver resampler keep the count of a scene in its tokens, when it is trained for exactly that?

The resampler (32 tokens, as the bundled adapter's) is trained with cross-entropy on the count of the counting
scenes of ``image:counts`` (three random streams, 3,600 scenes, stride-16 maps encoded once), through a linear
classifier on its flattened tokens; no LLM. Its accuracy on the 200 test scenes after each epoch says how much
of the count the architecture can carry, apart from what the LLM's caption loss asks of it:

- ``bundled``: starting from the bundled adapter's resampler; ``fresh``: from a new one;
- ``--no-media-norm``: without the LayerNorm each block puts on the encoder's cells (Flamingo's ``norm_media``).

    python plugins/anymal-plugin-image/scripts/resampler_counts.py bundled
    python plugins/anymal-plugin-image/scripts/resampler_counts.py fresh --no-media-norm
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from anymal_host.projectors import PerceiverResampler
from probe_counts import features

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "anymal_plugin_image" / "adapters" / "image-perceiver"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("start", choices=("bundled", "fresh"), help="the bundled adapter's resampler, or a new one")
    parser.add_argument("--no-media-norm", action="store_true", help="drop the LayerNorm on the encoder's cells")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = features(3, 224, streams=3)
    x, y = data["train"]
    x_test, y_test = data["test"]
    torch.manual_seed(0)
    resampler = PerceiverResampler(x.shape[2], 576, num_tokens=32)
    if args.start == "bundled":
        weights = load_file(str(BUNDLED / "adapter.safetensors"))
        resampler.load_state_dict({k.removeprefix("projector."): v for k, v in weights.items()
                                   if k.startswith("projector.")})
    if args.no_media_norm:
        for block in resampler.blocks:
            block.norm_media = nn.Identity()
    head = nn.Sequential(nn.LayerNorm(32 * 576), nn.Linear(32 * 576, 4))
    optimizer = torch.optim.AdamW([*resampler.parameters(), *head.parameters()], lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, pct_start=0.1,
                                                   total_steps=args.epochs * (len(x) // 32))

    def accuracy(cells: torch.Tensor, labels: torch.Tensor) -> float:
        with torch.no_grad():
            tokens, _ = resampler(cells, torch.ones(cells.shape[:2], dtype=torch.bool))
            return (head(tokens.flatten(1)).argmax(-1) == labels).float().mean().item()

    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(len(x))
        for k in range(0, len(x) - 31, 32):
            batch = order[k:k + 32]
            tokens, _ = resampler(x[batch], torch.ones(len(batch), x.shape[1], dtype=torch.bool))
            loss = nn.functional.cross_entropy(head(tokens.flatten(1)), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}: test {accuracy(x_test, y_test):.1%}, training scenes "
              f"{accuracy(x[:400], y[:400]):.1%} ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
