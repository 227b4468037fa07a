"""Training runs under accelerate with several processes (gloo on CPU): every rank sees the same loss."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters_hub import load_adapter_package


@pytest.mark.parametrize("encoder", ["trained", "frozen", "labels"])
def test_two_processes_train_one_adapter(tmp_path, encoder):
    # torchrun sets the distributed environment; accelerate's Accelerator picks it up (MULTI_CPU, gloo).
    script = Path(__file__).with_name("multiprocess_train.py")
    env = {**os.environ, "ANYMAL_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script),
                             str(tmp_path), encoder], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    assert ranks[0]["losses"] == ranks[1]["losses"]  # reduced across processes
    assert ranks[0]["label_losses"] == ranks[1]["label_losses"]
    config, tensors = load_adapter_package(tmp_path / "best")
    assert config.modality == "toy" and tensors
