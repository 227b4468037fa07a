"""Run by tests/test_multiprocess.py under `accelerate launch --num_processes 2 --cpu`: stage 1 on the toy data."""

import json
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anymal_host import AnymalHost, Registry  # noqa: E402
from anymal_host.training import TrainConfig, train  # noqa: E402
from tests import toy_plugin  # noqa: E402
from anymal_host.testing import tiny_llm  # noqa: E402

out = Path(sys.argv[1])
mode = sys.argv[2] if len(sys.argv) > 2 else "trained"
# frozen: each item is encoded once, the steps run DDP on the projector; labels: frozen, plus --label-loss, whose
# classifiers must learn the same on every process
frozen = mode in ("frozen", "labels")
registry = Registry.from_environment(extra_plugins=[toy_plugin])
host = AnymalHost(tiny_llm(), registry=registry)
result = train(TrainConfig(dataset="toy:ramps", output_dir=str(out), encoder={"name": "toy", "width": 8}, steps=4,
                           batch_size=4, eval_every=4, val_items=4, warmup_steps=1, train_encoder=not frozen,
                           label_loss=1.0 if mode == "labels" else 0.0),
               host, progress=False)
world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_initialized() else (1, 0)
(out / f"rank{rank}.json").write_text(json.dumps({"world": world, "losses": [h["loss"] for h in result.history],
                                                      "label_losses": [h.get("label_loss") for h in result.history]}))
