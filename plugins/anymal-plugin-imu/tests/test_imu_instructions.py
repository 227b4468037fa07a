"""A stage-2 instruction set from imu:hapt through the CLI, as a user makes one: written from the real data,
read back to the same windows, and answered by the real default LLM with the bundled adapter."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from anymal_plugin_imu import hapt
from anymal_plugin_imu.plugin import ADAPTERS_DIR

pytestmark = pytest.mark.e2e


def anymal(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anymal_host.cli", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def instruction_set(tmp_path_factory):
    reason = hapt.data_missing()
    if reason:
        pytest.skip(f"imu:hapt needs its data package: {reason}")
    folder = tmp_path_factory.mktemp("imu") / "instructions"
    result = anymal("instructions", "--from", "imu:hapt", "--out", str(folder), "--train", "8", "--val", "0",
                    "--test", "10")
    assert result.returncode == 0, result.stderr
    assert "test: 10 conversations" in result.stdout
    again = anymal("instructions", "--from", "imu:hapt", "--out", str(folder), "--train", "2")
    assert again.returncode == 2 and "is not empty" in again.stderr and "Traceback" not in again.stderr
    return folder


def test_written_windows_load_back_to_the_data_sets_signals(instruction_set):
    from anymal_host import get_registry
    from anymal_host.instructions import attachments_of, instruction_dataset

    items = instruction_dataset(instruction_set, get_registry()).build("test")
    signals = {tuple(np.round(item["signal"].numpy()[:4].ravel(), 4)): item["signal"] for item in hapt.build("test")}
    for item in items:
        for attachment in attachments_of(item):
            key = tuple(np.round(attachment.source.numpy()[:4].ravel(), 4))
            assert key in signals and torch.allclose(signals[key], attachment.source, atol=1e-5)


def test_cli_eval_scores_the_held_out_conversations_per_task(instruction_set, tmp_path):
    adapter = next(ADAPTERS_DIR.glob("*/anymal_adapter.json")).parent
    result = anymal("eval", "--data", str(instruction_set), "--adapter", str(adapter), "--out", str(tmp_path),
                    "--batch-size", "10")
    assert result.returncode == 0, result.stderr
    assert "all checked" in result.stdout and "text only" in result.stdout
    report = json.loads((tmp_path / "instruction_report.json").read_text())
    assert report["n"] == 10 and sum(row["n"] for row in report["tasks"].values()) == 10
    assert report["baseline"]["adapter"] is None and 0 <= report["accuracy"] <= 1
    refused = anymal("eval", "--data", str(instruction_set), "--question", "Why?")
    assert refused.returncode != 0 and "drop --question" in refused.stderr
