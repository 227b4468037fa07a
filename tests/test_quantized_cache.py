"""Quantized loads of a local checkpoint go through a quantized copy written on first use, so that later loads
never hold a full-precision model (anymal_host/quantized_cache.py); tiny LLaMA saved to a folder, and the real
default LLM for the memory it saves."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from anymal_host.llm import LLM, LLMOptions
from anymal_host.quantized_cache import quantized_copy_dir
from anymal_host.testing import tiny_llm

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny LLaMA of width 64 saved to a folder: bitsandbytes packs 4-bit weights in blocks of 64 values, so
    the width-32 tiny LLM of the other tests is too narrow to round-trip a 4-bit checkpoint."""
    folder = tmp_path_factory.mktemp("tiny-llm-64")
    llm = tiny_llm(hidden_size=64)
    llm.model.save_pretrained(folder)
    llm.tokenizer.save_pretrained(folder)
    return folder


def test_skip_modules_default_to_the_lm_head_and_in_4bit_the_queries_and_keys():
    assert LLMOptions().skip_modules == LLMOptions(quantization="8bit").skip_modules == ["lm_head"]
    assert LLMOptions(quantization="4bit").skip_modules == ["lm_head", "q_proj", "k_proj"]
    assert LLMOptions(quantization="4bit", skip_modules=["lm_head"]).skip_modules == ["lm_head"]  # as asked


def _settings(options: LLMOptions) -> dict:
    return {"quantization": options.quantization, "skip_modules": sorted(options.skip_modules),
            "dtype": str(torch.float32), "device": "cpu", "trust_remote_code": False}


def _answer(llm: LLM) -> list[str]:
    ids = llm.tokenizer(["the person is walking"], return_tensors="pt")["input_ids"]
    return llm.generate(llm.embed(ids), torch.ones_like(ids), max_new_tokens=6, min_new_tokens=6)


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
def test_the_first_quantized_load_writes_a_copy_that_later_loads_read(tmp_path, tiny_dir, mode, monkeypatch):
    import bitsandbytes as bnb

    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path / "home"))
    options = LLMOptions(quantization=mode)
    folder, key = quantized_copy_dir(tiny_dir, _settings(options))
    assert not folder.exists()
    first = LLM.load(str(tiny_dir), options, progress=False)
    assert (folder / "model.safetensors").is_file() and (folder / "anymal_quantized.json").is_file()
    layer = bnb.nn.Linear4bit if mode == "4bit" else bnb.nn.Linear8bitLt
    second = LLM.load(str(tiny_dir), options, progress=False)
    quantized = [m for m in second.model.modules() if isinstance(m, layer)]
    # every linear layer of both decoder layers but, in 4-bit, the attention's query and key projections
    # (FULL_PRECISION_4BIT); the LM head is always skipped
    assert len(quantized) == 2 * (5 if mode == "4bit" else 7)
    assert not isinstance(second.model.lm_head, layer)
    attention = second.model.model.layers[0].self_attn
    assert isinstance(attention.q_proj, layer) == isinstance(attention.k_proj, layer) == (mode == "8bit")
    assert isinstance(attention.v_proj, layer) and isinstance(attention.o_proj, layer)
    assert _answer(second) == _answer(first)  # the copy holds exactly the quantized weights
    assert second.fingerprint == first.fingerprint == LLM.load(str(tiny_dir), progress=False).fingerprint


def test_a_changed_checkpoint_gets_a_new_copy(tmp_path, tiny_dir, monkeypatch):
    import shutil

    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path / "home"))
    source = tmp_path / "llm"
    shutil.copytree(tiny_dir, source)
    options = LLMOptions(quantization="4bit")
    before, _ = quantized_copy_dir(source, _settings(options))
    LLM.load(str(source), options, progress=False)
    weights = next(source.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    after, _ = quantized_copy_dir(source, _settings(options))
    assert after != before and not after.exists()
    LLM.load(str(source), options, progress=False)
    assert after.is_dir() and not before.exists()  # the outdated copy is gone


def test_a_copy_that_cannot_be_written_is_skipped_with_one_line(tmp_path, tiny_dir, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "quantized").write_text("a file where the folder goes")
    monkeypatch.setenv("ANYMAL_HOME", str(home))
    llm = LLM.load(str(tiny_dir), LLMOptions(quantization="4bit"), progress=False)
    assert _answer(llm)
    assert "could not keep a 4bit copy of the LLM" in capsys.readouterr().err


MEASURE = r"""
import sys, torch, transformers, bitsandbytes
from anymal_host.testing._memory import peak_mib, reset_peak, resident_mib
floor = resident_mib()
reset_peak()
from anymal_host.llm import LLM, LLMOptions
LLM.load(options=LLMOptions(quantization=None if sys.argv[1] == "fp32" else sys.argv[1]), progress=False)
print(peak_mib() - floor)
"""


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's peak-RSS reset")
def test_loading_the_default_llm_4bit_from_its_copy_peaks_under_half_of_float32():
    def peak(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", MEASURE, mode], capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    peak("4bit")  # writes the copy, if this machine has none yet
    assert peak("4bit") < 0.5 * peak("fp32")
