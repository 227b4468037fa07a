"""The package format: exact round trip, safetensors metadata, LoRA in peft's format, model card, atomic writes."""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml
from safetensors import safe_open

from adapters_hub import (
    CONFIG_NAME, WEIGHTS_NAME, AdapterPackageError, PackageFileMissingError, load_adapter_package,
    save_adapter_package,
)
from adapters_hub.config import SCHEMA_VERSION
from adapters_hub.schema import ANYMAL_VERSION

from .conftest import FINGERPRINT, LLM_NAME, make_config, make_tensors


def test_round_trip_is_exact(package, config, tensors, host_facts):
    loaded_config, loaded = load_adapter_package(package, **host_facts)
    assert loaded_config == config
    assert loaded.keys() == tensors.keys()
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype and loaded[name].shape == t.shape
        assert torch.equal(loaded[name], t)


def test_files_and_weights_metadata(package, config):
    assert sorted(p.name for p in package.iterdir()) == sorted(["README.md", CONFIG_NAME, WEIGHTS_NAME])
    data = json.loads((package / CONFIG_NAME).read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["anymal_version"] == ANYMAL_VERSION
    with safe_open(str(package / WEIGHTS_NAME), "pt") as f:
        assert f.metadata() == {"schema_version": str(SCHEMA_VERSION), "llm_fingerprint": FINGERPRINT,
                                "modality": "imu", "format": "pt"}


def test_model_card_follows_hub_conventions(package):
    text = (package / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["base_model"] == LLM_NAME
    assert front["library_name"] == "anymal"
    assert front["license"] == "apache-2.0"
    assert {"anymal-adapter", "imu"} <= set(front["tags"])
    assert front["anymal"]["llm_fingerprint"] == FINGERPRINT
    assert "| activity_accuracy | 0.91 |" in text
    assert "pip install anymal anymal-plugin-imu" in text


def test_local_llm_path_is_not_a_base_model(tmp_path, tensors):
    config = make_config()
    config.llm.name = "/models/my-llm"
    save_adapter_package(tmp_path / "p", config, tensors, readme_extra="Trained on lab data.")
    text = (tmp_path / "p" / "README.md").read_text()
    assert "base_model" not in text.split("---")[1]
    assert "Trained on lab data." in text


def test_save_replaces_an_existing_package_atomically(tmp_path, config):
    folder = tmp_path / "pkg"
    save_adapter_package(folder, config, make_tensors(0))
    save_adapter_package(folder, config, make_tensors(1))
    _, loaded = load_adapter_package(folder)
    assert torch.equal(loaded["encoder.conv.bias"], make_tensors(1)["encoder.conv.bias"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]  # no temporary folders left behind


def test_failed_save_leaves_previous_package(tmp_path, config, monkeypatch):
    folder = tmp_path / "pkg"
    save_adapter_package(folder, config, make_tensors(0))
    import adapters_hub.package as package_module

    def broken_card(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(package_module, "render_model_card", broken_card)
    with pytest.raises(RuntimeError):
        save_adapter_package(folder, config, make_tensors(1))
    _, loaded = load_adapter_package(folder)
    assert torch.equal(loaded["encoder.conv.bias"], make_tensors(0)["encoder.conv.bias"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_save_refuses_to_replace_unrelated_folder(tmp_path, config, tensors):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(AdapterPackageError, match="not an adapter package"):
        save_adapter_package(tmp_path / "docs", config, tensors)
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"


def test_save_refuses_encoder_weights_when_not_included(tmp_path, tensors):
    config = make_config()
    config.encoder.weights_included = False
    with pytest.raises(AdapterPackageError, match="weights_included"):
        save_adapter_package(tmp_path / "p", config, tensors)
    projector_only = {k: v for k, v in tensors.items() if k.startswith("projector.")}
    save_adapter_package(tmp_path / "p", config, projector_only)
    assert load_adapter_package(tmp_path / "p")[1].keys() == projector_only.keys()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers' own deprecation notices
def test_lora_folder_in_peft_format(tmp_path, config, tensors):
    peft = pytest.importorskip("peft")
    from transformers import LlamaConfig, LlamaForCausalLM

    def base():
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, num_key_value_heads=2))
    model = peft.get_peft_model(base(), peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    model.save_pretrained(tmp_path / "peft_out")

    written = save_adapter_package(tmp_path / "pkg", config, tensors, lora_dir=tmp_path / "peft_out")
    assert written.lora["r"] == 2 and sorted(written.lora["target_modules"]) == ["q_proj", "v_proj"]
    assert sorted(p.name for p in (tmp_path / "pkg" / "lora").iterdir()) == ["adapter_config.json",
                                                                             "adapter_model.safetensors"]
    loaded_config, _ = load_adapter_package(tmp_path / "pkg")
    assert loaded_config.lora == written.lora
    # peft loads the folder as it is.
    reloaded = peft.PeftModel.from_pretrained(base(), str(tmp_path / "pkg" / "lora"))
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, model(ids).logits)


def test_lora_declared_without_folder_is_refused(tmp_path, tensors):
    config = make_config()
    config.lora = {"r": 2}
    with pytest.raises(PackageFileMissingError, match="no lora_dir was given"):
        save_adapter_package(tmp_path / "p", config, tensors)


def test_saved_files_are_synced_and_visible_only_complete(tmp_path, config, tensors, monkeypatch):
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        if str(dst).endswith("pkg"):
            replaced.append(sorted(p.name for p in os.scandir(src)))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    save_adapter_package(tmp_path / "pkg", config, tensors)
    assert replaced == [sorted(["README.md", CONFIG_NAME, WEIGHTS_NAME])]  # complete before it got its name
