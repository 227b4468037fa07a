"""The bad-package corpus, by defect class (issue: hardening). Each case spoils a copy of a good package in one
way and offers it to a host that is serving the good one, under the same name: it must be refused with its
documented error type (an ``AdapterPackageError`` subclass) and a message naming the problem, and the host must
answer exactly as before. ``test_hotload.py`` holds the first 23 cases; these add the classes found since.

Classes: 1 links that leave the package, 2 files that are not regular files, 3 parse failures, 4 configs that
ask for huge models, 5 packages that pass static checks but cannot work, 9 names; plus a header and a config
that overflow integer or float arithmetic.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import struct
from pathlib import Path

import pytest
import torch

from adapters_hub import (
    AdapterPackageError, PackageCorruptError, PackageTooLargeError, SchemaVersionError, TensorMismatchError,
    UnsafePackageError,
)
from anymal_host.errors import InvalidAdapterNameError
from anymal_host.loading import AdapterBuildError, AdapterFunctionalCheckError

from .test_hotload import (  # noqa: F401  (fixtures)
    _DELETE, _assert_still_serving, _edit_config, _rewrite_weights, good, serving,
)

SECRET = b"password=hunter2"


def _secret(folder: Path) -> Path:
    path = folder.parent / "secret.txt"
    path.write_bytes(SECRET)
    return path


def _link(rel: str, target=None):
    def spoil(f: Path) -> None:
        path = f / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target(f) if callable(target) else target)
    return spoil


def _replace_with_link(rel: str):
    def spoil(f: Path) -> None:
        (f / rel).unlink()
        (f / rel).symlink_to(_secret(f))
    return spoil


def _fifo(rel: str):
    def spoil(f: Path) -> None:
        path = f / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        os.mkfifo(path)
    return spoil


def _socket(rel: str):
    def spoil(f: Path) -> None:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(f / rel))
        sock.close()
    return spoil


def _folder_instead(rel: str):
    def spoil(f: Path) -> None:
        (f / rel).unlink()
        (f / rel).mkdir()
    return spoil


def _raw_config(text: str | bytes):
    def spoil(f: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (f / "anymal_adapter.json").write_bytes(data)
    return spoil


def _config_text(f: Path, replace: tuple[str, str]) -> None:
    path = f / "anymal_adapter.json"
    text = path.read_text()
    assert replace[0] in text, replace[0]
    path.write_text(text.replace(*replace))


def _schema0(**changes):
    """A schema-0 config (num_query_tokens, projector.kind) with some fields of the wrong type."""
    def spoil(f: Path) -> None:
        data = json.loads((f / "anymal_adapter.json").read_text())
        data["schema_version"] = 0
        data["num_query_tokens"] = data.pop("num_tokens")
        data["projector"]["kind"] = data["projector"].pop("type")
        data.update(changes)
        (f / "anymal_adapter.json").write_text(json.dumps(data))
    return spoil


def _raw_weights(header: dict | bytes, data: bytes = b""):
    """``adapter.safetensors`` made by hand: a header (dict or raw JSON bytes) and data bytes."""
    def spoil(f: Path) -> None:
        raw = header if isinstance(header, bytes) else json.dumps(header).encode()
        (f / "adapter.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return spoil


def _meta():
    return {"schema_version": "1", "llm_fingerprint": "x", "modality": "toy", "format": "pt"}


def _scale_weights(value: float):
    return lambda f: _rewrite_weights(f, lambda t: (t["projector.heads.weight"].zero_(),
                                                    t["projector.heads.bias"].fill_(value)))


#: (id, defect class, spoil, error type, a fragment the message must hold)
CASES = [
    # 1: links that leave the package, wherever they sit (bookkeeping folders included)
    ("link-in-git-folder", 1, _link(".git/config", _secret), UnsafePackageError, "outside the package"),
    ("link-in-hf-cache-folder", 1, _link(".cache/huggingface/token", _secret), UnsafePackageError, "outside the package"),
    ("link-in-huggingface-folder", 1, _link(".huggingface/notes", "/etc/hostname"), UnsafePackageError, "outside"),
    ("readme-is-a-link-out", 1, _replace_with_link("README.md"), UnsafePackageError, "outside the package"),
    ("weights-are-a-link-out", 1, _replace_with_link("adapter.safetensors"), UnsafePackageError, "outside"),
    ("linked-folder", 1, _link("lora", lambda f: (f / "real").mkdir() or f / "real"), UnsafePackageError,
     "linked folder"),
    ("dangling-link", 1, _link("notes.txt", "/no/such/file"), UnsafePackageError, "leads nowhere"),
    ("link-loop", 1, _link("loop.txt", "loop.txt"), UnsafePackageError, "leads nowhere"),
    # 2: things that are not regular files (opening a pipe for reading blocks forever)
    ("config-is-a-fifo", 2, _fifo("anymal_adapter.json"), UnsafePackageError, "named pipe"),
    ("weights-are-a-fifo", 2, _fifo("adapter.safetensors"), UnsafePackageError, "named pipe"),
    ("readme-is-a-fifo", 2, _fifo("README.md"), UnsafePackageError, "named pipe"),
    ("fifo-in-git-folder", 2, _fifo(".git/HEAD"), UnsafePackageError, "named pipe"),
    ("socket-in-package", 2, _socket("notes.sock"), UnsafePackageError, "socket"),
    ("config-is-a-folder", 2, _folder_instead("anymal_adapter.json"), UnsafePackageError, "folder"),
    ("weights-are-a-folder", 2, _folder_instead("adapter.safetensors"), UnsafePackageError, "folder"),
    # 3: parse failures that used to escape as other exception types
    ("config-nested-deeply", 3, _raw_config("[" * 100_000 + "]" * 100_000), PackageCorruptError, "nested too deeply"),
    ("config-int-5000-digits", 3, lambda f: _config_text(f, ('"num_tokens": 4', '"num_tokens": ' + "9" * 5000)),
     PackageCorruptError, "not valid JSON"),
    ("config-huge-hidden-size", 3, lambda f: _edit_config(f, llm__hidden_size=10**30, projector__out_dim=10**30),
     PackageCorruptError, "integer from 1 to"),
    ("config-not-utf8", 3, _raw_config(b'{"name": "\xff\xfe"}'), PackageCorruptError, "not valid JSON"),
    ("config-is-a-list", 3, _raw_config("[1, 2]"), PackageCorruptError, "not an object"),
    ("config-is-null", 3, _raw_config("null"), PackageCorruptError, "not an object"),
    ("config-too-large", 3, _raw_config(" " * (2 << 20)), PackageTooLargeError, "limit"),
    ("schema0-projector-is-a-list", 3, _schema0(projector=[["kind", "meanpool"]]), PackageCorruptError,
     "'projector' must be a JSON object"),
    ("schema0-token-count-is-text", 3, _schema0(num_query_tokens="many"), PackageCorruptError, "num_tokens"),
    ("schema-version-is-text", 3, lambda f: _edit_config(f, schema_version="1"), SchemaVersionError, "not an integer"),
    ("schema-version-negative", 3, lambda f: _edit_config(f, schema_version=-1), SchemaVersionError, "older"),
    ("header-shape-overflows", 3, _raw_weights({"projector.heads.bias": {"dtype": "F32", "shape": [10**200, 10**200],
                                                                          "data_offsets": [0, 4]}, "__metadata__": _meta()},
                                                b"\0" * 4), PackageCorruptError, "needs"),
    ("header-int-5000-digits", 3, _raw_weights(b'{"a": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], '
                                               b'"data_offsets": [0, 4]}}', b"\0" * 4), PackageCorruptError, "not JSON"),
    ("header-nested-deeply", 3, _raw_weights(b"[" * 50_000 + b"]" * 50_000), PackageCorruptError, "nested too deeply"),
    ("header-unknown-dtype", 3, _raw_weights({"projector.heads.bias": {"dtype": "F128", "shape": [1],
                                                                        "data_offsets": [0, 16]}}, b"\0" * 16),
     PackageCorruptError, "unknown dtype"),
    ("header-negative-dim", 3, _raw_weights({"projector.heads.bias": {"dtype": "F32", "shape": [-1],
                                                                       "data_offsets": [0, 4]}}, b"\0" * 4),
     PackageCorruptError, "invalid shape"),
    ("header-too-many-dims", 3, _raw_weights({"projector.heads.bias": {"dtype": "F32", "shape": [1] * 40,
                                                                        "data_offsets": [0, 4]}}, b"\0" * 4),
     PackageCorruptError, "invalid shape"),
    ("header-overlapping-tensors", 3, _raw_weights({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                                   b"\0" * 4), PackageCorruptError, "overlaps"),
    ("header-metadata-not-strings", 3, _raw_weights({"__metadata__": {"schema_version": 1}}), PackageCorruptError,
     "string-to-string"),
    ("weights-empty-file", 3, lambda f: (f / "adapter.safetensors").write_bytes(b""), PackageCorruptError,
     "shorter than the 8-byte"),
    ("weights-random-bytes", 3, lambda f: (f / "adapter.safetensors").write_bytes(os.urandom(4096)),
     AdapterPackageError, "adapter.safetensors"),
    ("pickle-in-subfolder", 3, lambda f: ((f / "extra").mkdir(), (f / "extra" / "state.pth").write_bytes(b"\x80")),
     UnsafePackageError, "pickle"),
    ("file-name-with-newline", 3, lambda f: (f / "notes\n.txt").write_text("x"), UnsafePackageError,
     "control characters"),
    ("pickle-with-trailing-dot", 3, lambda f: (f / "model.pt.").write_bytes(b"\x80"), UnsafePackageError,
     "ends a part with a dot"),
    ("numpy-pickle", 3, lambda f: (f / "stats.npz").write_bytes(b"PK"), UnsafePackageError, "pickle"),
    # 4: configs that ask for a huge model (built on the meta device, refused before any allocation)
    ("perceiver-asks-16-gb", 4, lambda f: _edit_config(f, projector__type="perceiver", projector__options={
        "max_steps": 65536, "dim": 65536, "heads": 8}), TensorMismatchError, "does not match"),
    ("perceiver-asks-a-million-layers", 4, lambda f: _edit_config(f, projector__type="perceiver", projector__options={
        "depth": 1_000_000, "heads": 4}), PackageCorruptError, "whole numbers are at most 65536"),
    ("perceiver-asks-60000-layers", 4, lambda f: _edit_config(f, projector__type="perceiver", projector__options={
        "depth": 60000, "heads": 4}), AdapterBuildError, "depth=60000: use a whole number from 1 to 64"),
    ("encoder-asks-wide", 4, lambda f: _edit_config(f, encoder__config={"width": 60000}, projector__in_dim=60000),
     TensorMismatchError, "does not match"),
    ("token-count-out-of-range", 4, lambda f: _edit_config(f, num_tokens=1_000_000), PackageCorruptError,
     "integer from 1 to 4096"),
    ("width-out-of-range", 4, lambda f: _edit_config(f, projector__in_dim=10**9), PackageCorruptError,
     "integer from 1 to 65536"),
    # 5: packages that pass the static checks but cannot work
    ("weights-huge-finite", 5, _scale_weights(1e30), PackageCorruptError, "over 1e+06 in magnitude"),
    ("tokens-drown-the-llm", 5, _scale_weights(1e5), AdapterFunctionalCheckError, "scale of the LLM's own"),
    ("preprocessing-wrong-type", 5, lambda f: _edit_config(f, preprocessing={"scale": "big"}),
     AdapterFunctionalCheckError, "example input"),
    ("preprocessing-nan", 5, lambda f: _config_text(f, ('"preprocessing": {}', '"preprocessing": {"scale": NaN}')),
     AdapterFunctionalCheckError, "NaN or inf tokens"),
    ("preprocessing-wipes-the-signal", 5, lambda f: _edit_config(f, preprocessing={"scale": 0}),
     AdapterFunctionalCheckError, "same tokens of two different inputs"),
    ("preprocessing-not-an-object", 5, lambda f: _edit_config(f, preprocessing=[1, 2]), PackageCorruptError,
     "'preprocessing'"),
    ("encoder-weights-claimed-absent", 5, lambda f: (_edit_config(f, encoder__weights_included=False),
                                                     _rewrite_weights(f, lambda t: [t.pop(k) for k in list(t)
                                                                                    if k.startswith("encoder.")])),
     AdapterBuildError, "ships no pretrained weights"),
    ("weights-included-is-text", 5, lambda f: _edit_config(f, encoder__weights_included="no"), PackageCorruptError,
     "true or false"),
    ("trainable-is-a-number", 5, lambda f: _edit_config(f, encoder__trainable=1), PackageCorruptError, "true or false"),
    ("metrics-is-a-list", 5, lambda f: _edit_config(f, metrics=[0.9]), PackageCorruptError, "'metrics'"),
    ("metrics-nested", 5, lambda f: _edit_config(f, metrics={"acc": {"val": 0.9}}), PackageCorruptError, "'metrics'"),
    ("metrics-infinite", 5, lambda f: _config_text(f, ('"metrics": {}', '"metrics": {"loss": Infinity}')),
     PackageCorruptError, "'metrics'"),
    ("encoder-options-nested-deeply", 5, lambda f: _edit_config(f, encoder__config=json.loads('{"a":' * 20 + "1"
                                                                                              + "}" * 20)),
     PackageCorruptError, "nested at most"),
    ("token-mode-contradicts-an-undeclared-projector", 5, lambda f: _edit_config(f, token_mode="per_step"),
     AdapterFunctionalCheckError, "its 'meanpool' projector is 'fixed'"),
    ("token-mode-unknown", 5, lambda f: _edit_config(f, token_mode="some"), PackageCorruptError, "fixed, per_step"),
    ("token-mode-contradicts-projector", 5, lambda f: _edit_config(f, token_mode="fixed", projector__type="mlp",
                                                                   projector__options={}, num_tokens=7),
     TensorMismatchError, "does not match"),
    ("llm-revision-is-a-number", 5, lambda f: _edit_config(f, llm__revision=5), PackageCorruptError, "'llm.revision'"),
    ("fingerprint-empty", 5, lambda f: _edit_config(f, llm__fingerprint=""), PackageCorruptError, "'llm.fingerprint'"),
    ("projector-type-empty", 5, lambda f: _edit_config(f, projector__type=""), PackageCorruptError, "'projector.type'"),
    ("modality-is-a-path", 5, lambda f: _edit_config(f, modality="../toy"), PackageCorruptError, "'modality'"),
    ("description-huge", 5, lambda f: _edit_config(f, description="x" * 100_000), PackageCorruptError,
     "'description'"),
    ("token-count-is-bool", 5, lambda f: _edit_config(f, num_tokens=True), PackageCorruptError, "'num_tokens'"),
    ("encoder-key-missing", 5, lambda f: _edit_config(f, encoder=_DELETE), PackageCorruptError, "'encoder'"),
    ("weights-all-zero", 5, lambda f: _rewrite_weights(f, lambda t: [v.zero_() for v in t.values()]),
     AdapterFunctionalCheckError, "0x the scale"),
    ("tokens-constant", 5, _scale_weights(0.5), AdapterFunctionalCheckError, "same tokens of two different inputs"),
    ("tokens-tiny", 5, lambda f: _rewrite_weights(f, lambda t: (t["projector.heads.weight"].mul_(1e-9),
                                                                t["projector.heads.bias"].mul_(1e-9))),
     AdapterFunctionalCheckError, "carry nothing"),
    ("encoder-zeroed", 5, lambda f: _rewrite_weights(f, lambda t: [t[k].zero_() for k in t if k.startswith("encoder.")]),
     AdapterFunctionalCheckError, "same tokens of two different inputs"),
    ("config-duplicate-fingerprint", 3, lambda f: _config_text(f, ('"llm": {', '"llm": {"fingerprint": "sha256:0", ')),
     PackageCorruptError, "has the key 'fingerprint' twice"),
    ("config-duplicate-schema", 3, lambda f: _config_text(f, ('"anymal_version"', '"schema_version": 0, "anymal_version"')),
     PackageCorruptError,
     "twice"),
    ("header-duplicate-tensor", 3, _raw_weights(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                                b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
                                                b"\0" * 4), PackageCorruptError, "key 'a' twice"),
    ("modality-trailing-newline", 5, lambda f: _edit_config(f, modality="toy\n"), PackageCorruptError, "'modality'"),
    ("perceiver-heads-true", 4, lambda f: _edit_config(f, projector__type="perceiver",
                                                        projector__options={"heads": True}),
     AdapterBuildError, "heads=True"),
    ("embedding-scale-absurd", 5, lambda f: _edit_config(f, llm__embedding_rms=1e300), PackageCorruptError,
     "'llm.embedding_rms'"),
    ("nested-too-deep", 1, lambda f: (f.joinpath(*["d"] * 20)).mkdir(parents=True), UnsafePackageError,
     "folders deep"),
    ("readme-huge", 3, lambda f: os.truncate((f / "README.md"), 64 << 20), PackageTooLargeError,
     "files other than weights"),
    # 9: names
    ("name-empty", 9, lambda f: _edit_config(f, name=""), PackageCorruptError, "is empty"),
    ("name-whitespace", 9, lambda f: _edit_config(f, name="   "), PackageCorruptError, "is empty"),
    ("name-control-characters", 9, lambda f: _edit_config(f, name="toy\nadapter"), PackageCorruptError,
     "control or invisible"),
    ("name-right-to-left-override", 9, lambda f: _edit_config(f, name="toy\u202eadapter"), PackageCorruptError,
     "control or invisible"),
    ("name-lone-surrogate", 9, lambda f: _config_text(f, ('"name": "toy-meanpool"', '"name": "toy\\ud800"')),
     PackageCorruptError, "'name'"),
    ("name-padded", 9, lambda f: _edit_config(f, name=" toy "), PackageCorruptError, "surrounding spaces"),
]


@pytest.mark.timeout(60)  # a hang (a pipe opened for reading) fails instead of blocking the suite
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_package_is_refused_and_the_old_adapter_keeps_answering(serving, good, tmp_path, case):
    host, name, before = serving
    _, _, spoil, error, fragment = case
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    spoil(bad)
    model, slot = host.llm.model, host.adapters[name]
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(error) as info:
        host.load_adapter(str(bad), name=name)  # would replace the serving adapter if it loaded
    assert isinstance(info.value, AdapterPackageError)
    assert fragment in str(info.value), str(info.value)
    assert SECRET.decode() not in str(info.value)
    # class 4: refused before anything was allocated (peak resident memory grew by less than 256 MB; the
    # configs of that class ask for gigabytes)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 256 * 1024
    _assert_still_serving(host, name, before, model, slot)


def test_the_corpus_covers_every_class_with_sixty_cases():
    from .test_hotload import CORRUPTIONS

    assert len(CASES) + len(CORRUPTIONS) >= 60
    assert {c[1] for c in CASES} == {1, 2, 3, 4, 5, 9}


def test_weights_replaced_between_check_and_read_are_refused(serving, good, tmp_path, monkeypatch):
    """Class 6: the weights are read once and what was read is verified against what was checked."""
    import adapters_hub.package as package
    from safetensors.torch import load_file, save_file

    host, name, before = serving
    model, slot = host.llm.model, host.adapters[name]
    bad = tmp_path / "swapped"
    shutil.copytree(good, bad)
    real_read = package.read_regular_file

    def read_after_swap(path, **kwargs):
        if Path(path).name == "adapter.safetensors":  # the check has run: swap the file for another valid one
            tensors = load_file(str(path))
            tensors["projector.heads.bias"] = torch.zeros(1)
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                metadata = json.loads(f.read(n))["__metadata__"]
            save_file(tensors, str(path), metadata=metadata)
        return real_read(path, **kwargs)

    monkeypatch.setattr(package, "read_regular_file", read_after_swap)
    with pytest.raises(PackageCorruptError, match="changed between its check and its read"):
        host.load_adapter(str(bad), name=name)
    _assert_still_serving(host, name, before, model, slot)


@pytest.mark.parametrize("bad_name", ["", "   ", "a\tb", " padded"])
def test_load_adapter_refuses_a_bad_name_before_reading_anything(serving, good, bad_name):
    host, name, before = serving
    model, slot = host.llm.model, host.adapters[name]
    with pytest.raises(InvalidAdapterNameError, match="empty|spaces|control"):
        host.load_adapter(str(good), name=bad_name)
    _assert_still_serving(host, name, before, model, slot)


def test_token_count_shown_is_what_the_projector_emits(tiny, registry, tmp_path):
    """Class 9: a per-step projector's package says so, with the count it really makes of the example input."""
    from adapters_hub import read_package_config, save_adapter_package
    from anymal_host import AnymalHost, ModalityAdapter

    from .conftest import toy_config

    config = toy_config(tiny, projector="linear", num_tokens=64)
    adapter = ModalityAdapter.from_config(config, registry)
    config.token_mode, config.num_tokens = adapter.token_facts()
    assert (config.token_mode, config.num_tokens) == ("per_step", 12)  # the toy example has 12 steps
    save_adapter_package(tmp_path / "linear", config, adapter.weights_for_saving())
    assert read_package_config(tmp_path / "linear").tokens_text() == "1 token per encoder step (12 for the example input)"
    host = AnymalHost(tiny, registry=registry)
    host.load_adapter(str(tmp_path / "linear"))
    [row] = host.list_adapters()
    assert row["token_mode"] == "per_step" and row["num_tokens"] == 12
    assert "(12 for the example input)" in (tmp_path / "linear" / "README.md").read_text()
    from adapters_hub import FolderHub

    hub = FolderHub(tmp_path / "hub")
    hub.push(tmp_path / "linear", "lab/linear")
    [(_, summary)] = hub.list()
    assert summary.tokens_text == "1 token per encoder step (12 for the example input)"
    assert hub.info("lab/linear").summary.token_mode == "per_step"


@pytest.fixture
def linear_package(tiny, registry, tmp_path) -> Path:
    from adapters_hub import save_adapter_package
    from anymal_host import ModalityAdapter

    from .conftest import toy_config

    config = toy_config(tiny, projector="linear", num_tokens=64)
    torch.manual_seed(2)
    adapter = ModalityAdapter.from_config(config, registry)
    config.token_mode, config.num_tokens = adapter.token_facts()
    save_adapter_package(tmp_path / "linear", config, adapter.weights_for_saving())
    return tmp_path / "linear"


@pytest.mark.parametrize("changes, fragment", [
    ({"token_mode": "fixed"}, "says token_mode 'fixed' but its 'linear' projector is 'per_step'"),
    ({"num_tokens": 999}, "says it makes 999 tokens (per_step, counted on the example input) but its projector "
                          "makes 12"),
])
def test_token_facts_that_lie_are_refused(serving, linear_package, tmp_path, changes, fragment):
    host, name, before = serving
    model, slot = host.llm.model, host.adapters[name]
    bad = tmp_path / "lying"
    shutil.copytree(linear_package, bad)
    _edit_config(bad, **changes)
    with pytest.raises(AdapterFunctionalCheckError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        host.load_adapter(str(bad), name=name)
    _assert_still_serving(host, name, before, model, slot)
    host.load_adapter(str(linear_package), name="linear")  # the honest one loads


def test_schema0_weights_metadata_is_accepted(serving, good, tmp_path):
    """A schema-0 package whose weights carry schema_version '0' (as its writer stamped them) loads: the config
    is migrated, the weights are those of the schema they were written under."""
    host, _, _ = serving
    old = tmp_path / "schema0"
    shutil.copytree(good, old)
    data = json.loads((old / "anymal_adapter.json").read_text())
    data["schema_version"] = 0
    data["num_query_tokens"] = data.pop("num_tokens")
    data["projector"]["kind"] = data["projector"].pop("type")
    (old / "anymal_adapter.json").write_text(json.dumps(data))
    _rewrite_weights(old, lambda t: None, {"schema_version": "0"})
    assert host.load_adapter(str(old), name="old") == "old"


@pytest.mark.parametrize("ref, fragment", [
    (b"/no/such/folder", "no such folder exists"),
    (42, "not int"),
    ("lab/toy@ma\nin", "is not a revision"),  # refused before any network access
])
def test_odd_refs_are_refused_with_the_ref_error(serving, ref, fragment):
    from adapters_hub import InvalidRefError

    host, name, before = serving
    model, slot = host.llm.model, host.adapters[name]
    with pytest.raises(InvalidRefError, match=fragment):
        host.load_adapter(ref, name=name)
    _assert_still_serving(host, name, before, model, slot)


def test_a_package_without_token_facts_loads_with_a_warning(serving, good, tmp_path):
    """Packages written before token_mode existed (or by code that builds configs by hand) keep loading: the
    host measures the projector and warns to export again (the migration path in docs/migration.md)."""
    from adapters_hub import AdapterPackageWarning

    host, _, _ = serving
    old = tmp_path / "old"
    shutil.copytree(good, old)
    _edit_config(old, token_mode=_DELETE)
    with pytest.warns(AdapterPackageWarning, match="does not record token_mode.*measures as fixed"):
        assert host.load_adapter(str(old), name="old") == "old"


def test_a_projector_that_cannot_take_the_probe_lengths_is_not_a_crash(tiny, registry, tmp_path):
    """The token-mode probe runs plugin code: a projector that fails on it leaves the mode unknown instead of
    escaping as an undocumented exception."""
    from anymal_host.adapter import measure_token_mode

    class OnlyTwelve(torch.nn.Module):
        def forward(self, features, mask):
            if features.shape[1] != 12:
                raise RuntimeError("needs 12 steps")
            return features, mask

    assert measure_token_mode(OnlyTwelve(), 8) is None
