"""Training on a quantized LLM on a CPU fixes glibc's mmap threshold at the largest dequantized weight
(anymal_host/training/heap.py), so that the float32 copies of the weights made at every step are given back to
the system instead of staying in a fragmented heap: the tiny LLaMA quantized for the wiring, a subprocess for
glibc's behaviour, and the real default LLM for the memory it saves (bench/quantize.py's target)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from anymal_host import AnymalHost
from anymal_host.llm import LLM, LLMOptions
from anymal_host.testing import tiny_llm
from anymal_host.training import TrainConfig, train
from anymal_host.training import loop as training_loop
from anymal_host.training.heap import dequantized_weight_bytes, pin_mmap_threshold

pytest.importorskip("bitsandbytes")

ON_GLIBC = sys.platform == "linux" and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
WIDTH = 64  # bitsandbytes packs 4-bit weights in blocks of 64 values: the width-32 tiny LLaMA is too narrow


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llm-64")
    llm = tiny_llm(hidden_size=WIDTH)
    llm.model.save_pretrained(folder)
    llm.tokenizer.save_pretrained(folder)
    return folder


def _load(tiny_dir, quantization, tmp_path, monkeypatch) -> LLM:
    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path / "home"))  # the quantized copy goes there
    return LLM.load(str(tiny_dir), LLMOptions(quantization=quantization), progress=False)


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
def test_the_largest_dequantized_weight_is_the_mlp_s_in_float32(tiny_dir, tmp_path, monkeypatch, mode):
    llm = _load(tiny_dir, mode, tmp_path, monkeypatch)
    # the MLP's projections (2 x width by width) are the largest quantized weights; float32 is 4 bytes a value
    assert dequantized_weight_bytes(llm.model, llm.dtype) == 2 * WIDTH * WIDTH * 4
    assert dequantized_weight_bytes(tiny_llm(hidden_size=WIDTH).model, llm.dtype) == 0  # nothing quantized


@pytest.mark.parametrize("mode", ["4bit", None])
def test_training_pins_the_threshold_for_a_quantized_llm_only(tiny_dir, tmp_path, monkeypatch, registry, mode):
    pinned = []
    monkeypatch.setattr(training_loop, "pin_mmap_threshold", lambda nbytes: pinned.append(nbytes))
    host = AnymalHost(_load(tiny_dir, mode, tmp_path, monkeypatch), registry=registry)
    result = train(TrainConfig(dataset="toy:ramps", output_dir=str(tmp_path / "run"), projector="linear",
                               encoder={"name": "toy", "width": 8}, steps=2, batch_size=4, eval_every=2, val_items=4,
                               val_generate=0, warmup_steps=0, quantization=mode), host, progress=False)
    assert len(result.history) == 2
    assert pinned == [2 * WIDTH * WIDTH * 4 if mode else 0]
    assert pin_mmap_threshold(0) is False  # what a float LLM's 0 does: nothing


GLIBC_HEAP = r"""
import ctypes, torch
from anymal_host.training.heap import pin_mmap_threshold

class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info

def mapped_by(nbytes):
    libc.malloc_trim(0)  # no free room at the heap's top: the block either extends the heap or is mapped
    before = libc.mallinfo2().hblkhd
    block = torch.ones(nbytes // 4)
    mapped = libc.mallinfo2().hblkhd - before
    del block
    return mapped

size = 4 * 2**20  # a dequantized weight
freed = torch.ones(30 * 2**20 // 4); del freed  # as loading a model does: glibc's threshold rises past 30 MiB
print(mapped_by(size), pin_mmap_threshold(size), mapped_by(size), mapped_by(size // 2))
"""


@pytest.mark.skipif(not ON_GLIBC, reason="glibc's malloc only")
def test_a_pinned_threshold_gives_blocks_of_that_size_their_own_mapping():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc's own defaults
    out = subprocess.run([sys.executable, "-c", GLIBC_HEAP], capture_output=True, text=True, check=True, env=env)
    from_heap, pinned, mapped, smaller = out.stdout.split()
    assert int(from_heap) == 0  # the cause: once a large block was freed, a 4 MiB block extends the heap
    assert pinned == "True" and int(mapped) >= 4 * 2**20  # pinned: mapped on its own, unmapped when freed
    assert int(smaller) == 0  # smaller blocks keep the heap


MEASURE = r"""
import sys, tempfile, torch, transformers, bitsandbytes
from anymal_host.testing._memory import peak_mib, reset_peak, resident_mib
floor = resident_mib()
reset_peak()
from anymal_host import AnymalHost
from anymal_host.llm import LLMOptions
from anymal_host.training import TrainConfig, train
quantization = None if sys.argv[1] == "fp32" else sys.argv[1]
host = AnymalHost(llm_options=LLMOptions(quantization=quantization))
with tempfile.TemporaryDirectory() as tmp:
    train(TrainConfig(dataset="imu:hapt", output_dir=tmp, init_from=str(host.registry.bundled_adapters["imu-linear"]),
                      projector="linear", steps=2, batch_size=8, lr=1e-4, warmup_steps=0, eval_every=2, val_items=8,
                      val_generate=0, max_train_items=64, quantization=quantization, keep_checkpoints=1),
          host, progress=False)
print(peak_mib() - floor)
"""


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's peak-RSS reset")
def test_stage1_training_on_the_default_llm_4bit_peaks_under_half_of_float32():
    def peak(mode: str) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run([sys.executable, "-c", MEASURE, mode], capture_output=True, text=True, check=True,
                             env={**env, "PYTHONWARNINGS": "ignore"})
        return float(out.stdout.split()[-1])

    peak("4bit")  # writes the quantized copy, if this machine has none yet
    assert peak("4bit") < 0.5 * peak("fp32")  # 0.52x before the threshold was pinned (bench/quantize.py)
