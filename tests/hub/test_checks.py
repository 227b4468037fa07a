"""Corrupt, malicious and mismatched packages: each is refused before a weight is read, with a message that
says what is wrong and the fix."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from safetensors.torch import save_file

from adapters_hub import (
    CONFIG_NAME, WEIGHTS_NAME, AdapterPackageError, FingerprintMismatchError, ForcedLoadWarning,
    HiddenSizeMismatchError, ModalityPluginMissingError, PackageCorruptError, PackageFileMissingError, PackageLimits,
    PackageTooLargeError, SchemaVersionError, TensorMismatchError, UnsafePackageError, check_member_name,
    check_package, load_adapter_package, weights_metadata,
)

from .conftest import FINGERPRINT, HIDDEN, LLM_NAME


@pytest.fixture
def no_weight_reads(monkeypatch):
    """Fail the test if a refused package got as far as reading tensor data."""
    import safetensors.torch

    def forbidden(*args, **kwargs):
        raise AssertionError("a weight was read before the checks refused the package")
    monkeypatch.setattr(safetensors.torch, "load_file", forbidden)


def _config(package) -> dict:
    return json.loads((package / CONFIG_NAME).read_text())


def _write_config(package, data) -> None:
    (package / CONFIG_NAME).write_text(json.dumps(data))


def _resave_weights(package, config, tensors) -> None:
    save_file(tensors, str(package / WEIGHTS_NAME), metadata=weights_metadata(config))


def refuse(package, host_facts, error, pattern, **overrides):
    with pytest.raises(error, match=pattern) as info:
        load_adapter_package(package, **{**host_facts, **overrides})
    assert isinstance(info.value, AdapterPackageError) and isinstance(info.value, ValueError)
    return str(info.value)


def test_valid_package_passes_every_check(package, host_facts, config):
    checked = check_package(package, **host_facts)
    assert checked.config == config and checked.lora_dir is None
    assert set(checked.header.tensors) == set(host_facts["expected_tensors"])


# 1
def test_truncated_safetensors(package, host_facts, no_weight_reads):
    data = (package / WEIGHTS_NAME).read_bytes()
    (package / WEIGHTS_NAME).write_bytes(data[:-10])
    refuse(package, host_facts, PackageCorruptError, r"truncated.*download or export the adapter again")


# 2
def test_truncated_inside_header(package, host_facts, no_weight_reads):
    data = (package / WEIGHTS_NAME).read_bytes()
    (package / WEIGHTS_NAME).write_bytes(data[:40])
    refuse(package, host_facts, PackageCorruptError, r"header of \d+ bytes declared but the file has 40 bytes")


# 3
def test_wrong_shape(package, host_facts, no_weight_reads):
    expected = dict(host_facts["expected_tensors"])
    expected["projector.fc2.weight"] = ((HIDDEN, 24), "F32")
    message = refuse(package, host_facts, TensorMismatchError,
                     r"projector.fc2.weight has shape \[16, 12\], expected \[16, 24\]", expected_tensors=expected)
    assert "export the package again" in message


# 4
def test_wrong_dtype(package, host_facts, no_weight_reads):
    expected = dict(host_facts["expected_tensors"])
    expected["projector.fc1.weight"] = ((12, 8), torch.float32)
    refuse(package, host_facts, TensorMismatchError, r"projector.fc1.weight has dtype BF16, expected F32",
           expected_tensors=expected)


def test_dtype_none_accepts_any_dtype(package, host_facts):
    expected = {k: (shape, None) for k, (shape, _) in host_facts["expected_tensors"].items()}
    check_package(package, **{**host_facts, "expected_tensors": expected})


# 5
def test_extra_tensor(package, host_facts, config, tensors, no_weight_reads):
    _resave_weights(package, config, {**tensors, "projector.extra": torch.zeros(2)})
    refuse(package, host_facts, TensorMismatchError, r"unexpected tensors: projector.extra")


# 6
def test_missing_tensor(package, host_facts, config, tensors, no_weight_reads):
    _resave_weights(package, config, {k: v for k, v in tensors.items() if k != "encoder.conv.bias"})
    refuse(package, host_facts, TensorMismatchError, r"missing tensors: encoder.conv.bias")


# 7
def test_tensor_outside_encoder_and_projector(package, host_facts, config, tensors, no_weight_reads):
    _resave_weights(package, config, {**tensors, "lm_head.weight": torch.zeros(2)})
    refuse(package, {}, TensorMismatchError, r"tensors outside projector.\* / encoder.\*: lm_head.weight")


# 8
def test_foreign_fingerprint_refused_unless_forced(package, host_facts, no_weight_reads):
    message = refuse(package, host_facts, FingerprintMismatchError, r"embedding space differs",
                     host_fingerprint="0" * 64)
    assert "pass force=True" in message and "pull the adapter trained for" in message


def test_forced_fingerprint_loads_with_a_warning(package, host_facts, config):
    with pytest.warns(ForcedLoadWarning, match="loading anyway because force=True"):
        loaded, _ = load_adapter_package(package, **{**host_facts, "host_fingerprint": "0" * 64}, force=True)
    assert loaded == config


# 9
def test_hidden_size_mismatch(package, host_facts, config, tensors, no_weight_reads):
    data = _config(package)
    data["llm"]["hidden_size"] = data["projector"]["out_dim"] = 8192
    _write_config(package, data)
    message = refuse(package, {**host_facts, "host_hidden_size": 576, "host_llm_name": LLM_NAME},
                     HiddenSizeMismatchError, r"adapter 'imu-small' expects hidden size 8192, host LLM")
    assert f"has 576: pull the adapter trained for {LLM_NAME}" in message


def test_hidden_size_mismatch_is_never_forced(package, host_facts, no_weight_reads):
    refuse(package, host_facts, HiddenSizeMismatchError, "expects hidden size", host_hidden_size=576, force=True)


# 10
def test_missing_modality_plugin(package, host_facts, no_weight_reads):
    message = refuse(package, host_facts, ModalityPluginMissingError, r"pip install anymal-plugin-imu",
                     installed_modalities={"image", "audio"})
    assert "installed: audio, image" in message


# 11
@pytest.mark.parametrize("name", ["pytorch_model.bin", "adapter.pt", "weights.pth", "state.pkl", "x.pickle",
                                  "last.ckpt", "lora/adapter_model.bin"])
def test_pickle_capable_file_is_refused(package, host_facts, name, no_weight_reads):
    (package / name).parent.mkdir(exist_ok=True)
    (package / name).write_bytes(b"\x80\x04K\x01.")
    message = refuse(package, host_facts, UnsafePackageError, r"pickle-capable format that anymal never loads")
    assert name in message and "only safetensors are read" in message


# 12
@pytest.mark.parametrize("name", ["../evil.safetensors", "/etc/passwd", "lora/../../x", "a\\..\\b", "C:/x", "./x"])
def test_path_traversal_names_are_refused(name):
    with pytest.raises(UnsafePackageError, match="escapes the package folder|absolute or malformed"):
        check_member_name(name)


# 13
def test_symlink_outside_the_package(package, host_facts, tmp_path, no_weight_reads):
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    os.symlink(secret, package / "notes.txt")
    refuse(package, host_facts, UnsafePackageError, r"'notes.txt' is a link to .*outside the package")


def test_symlinked_weights_outside_the_package(package, host_facts, tmp_path, no_weight_reads):
    os.replace(package / WEIGHTS_NAME, tmp_path / "elsewhere.safetensors")
    os.symlink(tmp_path / "elsewhere.safetensors", package / WEIGHTS_NAME)
    refuse(package, host_facts, UnsafePackageError, r"'adapter.safetensors' is a link to .*outside the package")


def test_symlink_inside_the_package_is_fine(package, host_facts):
    os.symlink(package / "README.md", package / "MODEL_CARD.md")
    load_adapter_package(package, **host_facts)


# 14
def test_huge_header_is_refused_without_reading_it(package, host_facts, no_weight_reads):
    size = (16 << 20) + 8  # one past the default limit: a file this size may be real, its header is not read
    (package / WEIGHTS_NAME).write_bytes(struct.pack("<Q", size) + b"{" + b" " * (size - 2) + b"}")
    refuse(package, host_facts, PackageTooLargeError, rf"declares a {size}-byte header, over the 16777216-byte limit")


def test_header_length_beyond_the_file(package, host_facts, no_weight_reads):
    (package / WEIGHTS_NAME).write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    refuse(package, host_facts, PackageCorruptError, r"header of 1099511627776 bytes declared but the file has 10")


def test_header_over_configured_limit(package, host_facts, no_weight_reads):
    refuse(package, host_facts, PackageTooLargeError, r"header, over the 64-byte limit",
           limits=PackageLimits(max_header_bytes=64))


# 15
def test_invalid_json_config(package, host_facts, no_weight_reads):
    (package / CONFIG_NAME).write_text('{"name": "imu-small", ')
    refuse(package, host_facts, PackageCorruptError, r"anymal_adapter.json is not valid JSON .*fix it or export")


def test_config_that_is_not_an_object(package, host_facts, no_weight_reads):
    (package / CONFIG_NAME).write_text("[1, 2]")
    refuse(package, host_facts, PackageCorruptError, r"holds a JSON list, not an object")


def test_config_missing_a_required_key(package, host_facts, no_weight_reads):
    data = _config(package)
    del data["llm"]["fingerprint"]
    _write_config(package, data)
    refuse(package, host_facts, PackageCorruptError, r"missing the required key 'llm.fingerprint'")


def test_config_with_wrong_type(package, host_facts, no_weight_reads):
    data = _config(package)
    data["llm"]["hidden_size"] = "16"
    _write_config(package, data)
    refuse(package, host_facts, PackageCorruptError, r"'llm.hidden_size' is '16' but must be an integer")


# 16
def test_newer_schema(package, host_facts, no_weight_reads):
    data = _config(package)
    data["schema_version"] = 99
    _write_config(package, data)
    refuse(package, host_facts, SchemaVersionError, r"upgrade anymal \(pip install -U anymal\)")


# 17
def test_missing_safetensors_file(package, host_facts, no_weight_reads):
    (package / WEIGHTS_NAME).unlink()
    refuse(package, host_facts, PackageFileMissingError, r"adapter.safetensors is missing .*pull it again")


def test_missing_config_file(package, host_facts, no_weight_reads):
    (package / CONFIG_NAME).unlink()
    refuse(package, host_facts, PackageFileMissingError, r"anymal_adapter.json is missing")


def test_missing_package_folder(tmp_path, host_facts):
    refuse(tmp_path / "nope", host_facts, PackageFileMissingError, r"does not exist")


# 18
def test_nan_weights(package, host_facts, config, tensors):
    bad = dict(tensors)
    bad["projector.fc2.weight"] = bad["projector.fc2.weight"].clone()
    bad["projector.fc2.weight"][0, 0] = float("nan")
    _resave_weights(package, config, bad)
    refuse(package, host_facts, PackageCorruptError, r"NaN or inf in projector.fc2.weight: the training run diverged")


# 19
def test_non_safetensors_bytes_renamed(package, host_facts, no_weight_reads):
    (package / WEIGHTS_NAME).write_bytes(b"PK\x03\x04" + os.urandom(200))  # a zip (torch.save) renamed
    refuse(package, host_facts, PackageCorruptError, r"not a valid safetensors file")


def test_header_that_is_not_json(package, host_facts, no_weight_reads):
    body = b"\xff\xfe not json at all"
    (package / WEIGHTS_NAME).write_bytes(struct.pack("<Q", len(body)) + body)
    refuse(package, host_facts, PackageCorruptError, r"header is not JSON")


def test_offsets_pointing_past_the_data(package, host_facts, no_weight_reads):
    header = json.dumps({"__metadata__": weights_metadata(_config_obj(package)),
                         "projector.w": {"dtype": "F32", "shape": [1000000], "data_offsets": [0, 4000000]}}).encode()
    (package / WEIGHTS_NAME).write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    refuse(package, host_facts, PackageCorruptError, r"truncated: the header describes 4000000 bytes")


def _config_obj(package):
    from adapters_hub import read_package_config
    return read_package_config(package)


# 20
def test_weights_from_another_adapter(package, host_facts, config, tensors, no_weight_reads):
    save_file(tensors, str(package / WEIGHTS_NAME), metadata={**weights_metadata(config), "llm_fingerprint": "e" * 64})
    refuse(package, host_facts, PackageCorruptError, r"metadata does not match anymal_adapter.json: llm_fingerprint")


def test_weights_saved_without_anymal(package, host_facts, tensors, no_weight_reads):
    save_file(tensors, str(package / WEIGHTS_NAME))
    refuse(package, host_facts, PackageCorruptError, r"saved without anymal: export the package again")


# 21
def test_oversize_file_and_config(package, host_facts, no_weight_reads):
    refuse(package, host_facts, PackageTooLargeError, r"adapter.safetensors' is \d+ bytes, over the 100-byte limit",
           limits=PackageLimits(max_file_bytes=100, max_config_bytes=10))
    refuse(package, host_facts, PackageTooLargeError, r"anymal_adapter.json is \d+ bytes, over the 10-byte limit",
           limits=PackageLimits(max_config_bytes=10))
    refuse(package, host_facts, PackageTooLargeError, r"package is \d+ bytes, over the 1000-byte limit",
           limits=PackageLimits(max_total_bytes=1000))


# 22
def test_lora_declared_but_folder_missing(package, host_facts, no_weight_reads):
    data = _config(package)
    data["lora"] = {"r": 4}
    _write_config(package, data)
    refuse(package, host_facts, PackageFileMissingError, r"declares a LoRA config but the package has no lora/")


def test_lora_folder_with_broken_weights(package, host_facts, config, no_weight_reads):
    data = _config(package)
    data["lora"] = {"r": 4}
    _write_config(package, data)
    (package / "lora").mkdir()
    (package / "lora" / "adapter_config.json").write_text("{}")
    (package / "lora" / "adapter_model.safetensors").write_bytes(b"junk")
    refuse(package, host_facts, PackageCorruptError, r"adapter_model.safetensors is not a valid safetensors file")


def test_projector_output_differs_from_llm_hidden_size(package, host_facts, no_weight_reads):
    data = _config(package)
    data["projector"]["out_dim"] = 32
    _write_config(package, data)
    refuse(package, host_facts, PackageCorruptError, r"projector.out_dim is 32 but llm.hidden_size is 16")


def test_every_check_can_be_skipped_by_passing_none(package):
    check_package(package)  # structural checks only (what hubs run before publishing)


def test_fingerprint_in_message_is_shortened_to_where_they_differ(package, host_facts):
    with pytest.raises(FingerprintMismatchError) as info:
        check_package(package, host_fingerprint="1" * 64)
    assert "fingerprint ffffffff..." in str(info.value) and "fingerprint 11111111..." in str(info.value)
    assert FINGERPRINT not in str(info.value)
    # differing in the last character only: the message shows the end, where they differ
    with pytest.raises(FingerprintMismatchError) as info:
        check_package(package, host_fingerprint="f" * 63 + "0")
    assert "fingerprint ...fffffffff)" in str(info.value) and "fingerprint ...ffffffff0" in str(info.value)
