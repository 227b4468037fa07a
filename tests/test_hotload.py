"""Hot-loading adapter packages into a running host (tiny LLaMA + the toy plugin, no network).

A good adapter is loaded and answering; then every kind of corrupt, malicious or mismatched package is offered
(under the same name, trying to replace it) and each is refused with a clear error while the first one keeps
answering identically. Plus: folder-hub and (fake) Hugging Face round trips into a second host, the bundled
auto-load path, and concurrent generation while adapters are swapped.
"""

from __future__ import annotations

import json
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from adapters_hub import (
    AdapterPackageError, FingerprintMismatchError, FolderHub, ForcedLoadWarning, HiddenSizeMismatchError,
    InvalidRefError, ModalityPluginMissingError, PackageCorruptError, PackageFileMissingError, PackageTooLargeError,
    SchemaVersionError, TensorMismatchError, UnsafePackageError, save_adapter_package, weights_metadata,
)
from anymal_host import AnymalHost, Attachment, ModalityAdapter, hookimpl
from anymal_host.loading import AdapterBuildError, build_adapter_from_folder
from anymal_host.lora import LoraMismatchError

from .conftest import toy_config
from .hub.conftest import fake_hub  # noqa: F401  (the fake Hugging Face Hub fixture)
from anymal_host.testing import tiny_llm
from .toy_plugin import ToyModality

SIGNAL = np.stack([np.sin(np.arange(12) / 3), np.cos(np.arange(12) / 3)], 1).astype(np.float32)


def NON_EMPTY(host: AnymalHost) -> dict:
    """The tiny random LLaMA likes to answer with newlines only (stripped to ''): forbid them and an early end,
    so answers are text that can be compared."""
    return {"min_new_tokens": 6, "suppress_tokens": [host.llm.tokenizer.convert_tokens_to_ids("Ċ")]}


def make_adapter(llm, registry, seed: int = 0, name: str = "toy-meanpool") -> ModalityAdapter:
    torch.manual_seed(seed)
    adapter = ModalityAdapter.from_config(toy_config(llm), registry)
    adapter.config.name = name
    return adapter


def save(adapter: ModalityAdapter, folder: Path) -> Path:
    save_adapter_package(folder, adapter.config, adapter.weights_for_saving())
    return folder


def constant_adapter(llm, registry, value: float, name: str) -> ModalityAdapter:
    """An adapter whose every output is ``value`` plus a tiny input-dependent part (a truly constant adapter is
    refused by the functional check): which one encoded a signal is visible in the sign of its tokens."""
    adapter = make_adapter(llm, registry, name=name)
    with torch.no_grad():
        adapter.projector.heads.weight.mul_(1e-3)
        adapter.projector.heads.bias.fill_(value)
    return adapter


def ask(host: AnymalHost, adapter: str | None = None) -> tuple[str, torch.Tensor]:
    conversation = [{"role": "user", "content": [Attachment(SIGNAL, modality="toy", adapter=adapter),
                                                 "describe this recording"]}]
    text = host.generate([conversation], max_new_tokens=6, **NON_EMPTY(host))[0]
    return text, host.embed([conversation]).inputs_embeds


@pytest.fixture
def good(tiny, registry, tmp_path) -> Path:
    return save(make_adapter(tiny, registry, seed=1), tmp_path / "good")


# ----- round trips ----------------------------------------------------------------------------------------


def test_push_to_folder_hub_pull_into_second_host_and_chat(tiny, registry, tmp_path, good):
    hub = FolderHub(tmp_path / "hub")
    revision = hub.push(good, "lab/toy", "first toy adapter")
    reference = build_adapter_from_folder(good, AnymalHost(tiny, registry=registry))

    second = AnymalHost(tiny_llm(), registry=registry)  # another host, its own LLM instance (same weights)
    model = second.llm.model
    name = second.load_adapter(f"file://{tmp_path / 'hub'}/lab/toy", cache_dir=tmp_path / "cache-2")
    assert name == "toy-meanpool" and second.active_adapter_name("toy") == name
    [row] = second.list_adapters()
    assert row["kind"] == "hub" and row["revision"] == revision and row["fingerprint_match"] is True
    assert row["active"] and row["loaded"] and row["projector"] == "meanpool" and row["num_tokens"] == 4

    signal_file = tmp_path / "walk.toy"
    np.savetxt(signal_file, SIGNAL)
    answer = second.chat("describe this recording", attachments=[str(signal_file)], max_new_tokens=5)
    assert isinstance(answer, str)
    expected = reference.encode([str(signal_file)])[0]
    got = second.adapters[name].adapter.encode([str(signal_file)])[0]
    assert torch.equal(expected, got)
    assert second.llm.model is model  # the LLM is never reloaded


def test_pull_through_fake_hugging_face_hub_into_a_cache_dir(tiny, registry, tmp_path, good, fake_hub):
    from adapters_hub import HFHub

    revision = HFHub(endpoint=fake_hub.url, token=False).push(good, "lab/toy", "toy adapter")
    host = AnymalHost(tiny, registry=registry)
    cache = tmp_path / "hf-cache"
    name = host.load_adapter("hf://lab/toy", cache_dir=cache, hf_endpoint=fake_hub.url, token=False)
    slot = host.adapters[name]
    assert Path(slot.folder).is_relative_to(cache) and Path(slot.folder).name == revision
    text, _ = ask(host)
    assert isinstance(text, str)


def test_bundled_and_hub_adapters_side_by_side(tiny, registry, tmp_path, good):
    bundled_dir = save(make_adapter(tiny, registry, seed=3, name="toy-bundled"), tmp_path / "bundles" / "toy-bundled")

    class Bundler:
        @hookimpl
        def register_adapters(self, register):
            register("toy-bundled", bundled_dir)

    registry.add_plugin(Bundler(), name="bundler")
    host = AnymalHost(tiny, registry=registry)
    rows = host.list_adapters()
    assert [(r["name"], r["kind"], r["loaded"]) for r in rows] == [("toy-bundled", "bundled", False)]
    ask(host)  # a toy attachment with no adapter loaded: the bundled one loads through build_adapter_from_folder
    assert host.adapters["toy-bundled"].kind == "bundled"
    host.load_adapter(str(good), name="from-folder")
    rows = {r["name"]: r for r in host.list_adapters()}
    assert rows["toy-bundled"]["loaded"] and not rows["toy-bundled"]["active"]
    assert rows["from-folder"]["active"] and rows["from-folder"]["kind"] == "folder"


# ----- refusals: the old adapter keeps answering ----------------------------------------------------------


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "anymal_adapter.json"
    data = json.loads(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    path.write_text(json.dumps(data))


_DELETE = object()


def _rewrite_weights(folder: Path, change, metadata_change: dict | None = None) -> None:
    path = folder / "adapter.safetensors"
    tensors = load_file(str(path))
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        metadata = json.loads(f.read(n))["__metadata__"]
    change(tensors)
    save_file(tensors, str(path), metadata={**metadata, **(metadata_change or {})})


def _fake_lora(folder: Path) -> None:
    lora = folder.parent / "peft-lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"]}))
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.zeros(2, 32)}, str(lora / "adapter_model.safetensors"))
    config = json.loads((folder / "anymal_adapter.json").read_text())
    from adapters_hub import AdapterConfig

    save_adapter_package(folder, AdapterConfig.from_dict({k: v for k, v in config.items()}),
                         load_file(str(folder / "adapter.safetensors")), lora_dir=lora)


def _set(tensors, key, value):
    tensors[key] = value


#: (id, how the good package is spoiled, the error class, a fragment the message must hold)
CORRUPTIONS = [
    ("config-missing", lambda f: (f / "anymal_adapter.json").unlink(), PackageFileMissingError, "anymal_adapter.json"),
    ("weights-missing", lambda f: (f / "adapter.safetensors").unlink(), PackageFileMissingError, "adapter.safetensors"),
    ("config-not-json", lambda f: (f / "anymal_adapter.json").write_text("{not json"), PackageCorruptError, "not valid JSON"),
    ("config-key-missing", lambda f: _edit_config(f, projector=_DELETE), PackageCorruptError, "projector"),
    ("schema-from-future", lambda f: _edit_config(f, schema_version=99), SchemaVersionError, "schema"),
    ("modality-not-installed", lambda f: _edit_config(f, modality="smell"), ModalityPluginMissingError,
     "pip install anymal-plugin-smell"),
    ("hidden-size", lambda f: _edit_config(f, llm__hidden_size=64, projector__out_dim=64), HiddenSizeMismatchError,
     "hidden size 64"),
    ("fingerprint", lambda f: _edit_config(f, llm__fingerprint="sha256:" + "0" * 64), FingerprintMismatchError,
     "force=True"),
    ("pickle-file", lambda f: (f / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01."), UnsafePackageError, "pickle"),
    ("link-outside", lambda f: (f / "notes.txt").symlink_to("/etc/hostname"), UnsafePackageError, "outside the package"),
    ("weights-truncated", lambda f: (f / "adapter.safetensors").write_bytes((f / "adapter.safetensors").read_bytes()[:40]),
     PackageCorruptError, "adapter.safetensors"),
    ("weights-header-huge", lambda f: (f / "adapter.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}"),
     AdapterPackageError, "adapter.safetensors"),
    ("weights-wrong-shape", lambda f: _rewrite_weights(f, lambda t: _set(t, "projector.heads.weight", torch.zeros(128, 9))),
     TensorMismatchError, "projector.heads.weight has shape [128, 9]"),
    ("weights-tensor-missing", lambda f: _rewrite_weights(f, lambda t: t.pop("projector.heads.bias")), TensorMismatchError,
     "missing tensors: projector.heads.bias"),
    ("weights-extra-tensor", lambda f: _rewrite_weights(f, lambda t: _set(t, "projector.backdoor", torch.ones(3))),
     TensorMismatchError, "unexpected tensors: projector.backdoor"),
    ("weights-outside-prefix", lambda f: _rewrite_weights(f, lambda t: _set(t, "lm_head.weight", torch.ones(3))),
     TensorMismatchError, "lm_head.weight"),
    ("weights-wrong-dtype", lambda f: _rewrite_weights(f, lambda t: _set(t, "projector.heads.bias", t["projector.heads.bias"].half())),
     TensorMismatchError, "dtype"),
    ("weights-nan", lambda f: _rewrite_weights(f, lambda t: t["projector.heads.weight"].fill_(float("nan"))),
     PackageCorruptError, "NaN"),
    ("weights-from-other-llm", lambda f: _rewrite_weights(f, lambda t: None, {"llm_fingerprint": "sha256:other"}),
     PackageCorruptError, "metadata does not match"),
    ("unknown-projector", lambda f: _edit_config(f, projector__type="quantum"), AdapterBuildError, "quantum"),
    ("encoder-width-mismatch", lambda f: _edit_config(f, encoder__config={"width": 16}), AdapterBuildError,
     "features of width 16"),
    ("lora-half-a-pair", _fake_lora, LoraMismatchError, "not lora_B"),
    ("too-many-files", lambda f: [(f / f"extra-{i}.txt").write_text("x") for i in range(300)], PackageTooLargeError,
     "over the limit of 256"),
]


@pytest.fixture
def serving(tiny, registry, good):
    """A host answering with the good adapter, and what it answers before any refusal."""
    host = AnymalHost(tiny, registry=registry)
    name = host.load_adapter(str(good))
    before = ask(host)
    return host, name, before


def _assert_still_serving(host, name, before, model, slot):
    assert host.adapters[name] is slot and host.active_adapter_name("toy") == name
    assert list(host.adapters) == [name]
    text, embeds = ask(host)
    assert before[0] and text == before[0] and torch.equal(embeds, before[1])
    assert host.llm.model is model


@pytest.mark.parametrize("case", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_bad_package_is_refused_and_the_old_adapter_keeps_answering(serving, good, tmp_path, case):
    host, name, before = serving
    _, spoil, error, fragment = case
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    spoil(bad)
    model, slot = host.llm.model, host.adapters[name]
    with pytest.raises(error) as info:
        host.load_adapter(str(bad), name=name)  # would replace the serving adapter if it loaded
    assert isinstance(info.value, AdapterPackageError)
    assert fragment in str(info.value)
    _assert_still_serving(host, name, before, model, slot)


def test_bad_refs_are_refused_and_the_old_adapter_keeps_answering(serving, tmp_path, good):
    host, name, before = serving
    model, slot = host.llm.model, host.adapters[name]
    hub = FolderHub(tmp_path / "hub")
    hub.push(good, "lab/toy")
    revision_dir = next((tmp_path / "hub" / "lab" / "toy" / "revisions").iterdir())
    (revision_dir / "README.md").write_text("tampered after publishing")
    cases = [
        ("", InvalidRefError, "empty adapter ref"),
        ("gopher://lab/toy", InvalidRefError, "unknown scheme"),
        (str(tmp_path / "no-such-folder"), InvalidRefError, "no such folder"),
        (f"file://{tmp_path / 'hub'}/lab/missing", AdapterPackageError, "no repo 'lab/missing'"),
        (f"file://{tmp_path / 'hub'}/lab/toy@0123456789abcdef", AdapterPackageError, "has no revision"),
        (f"file://{tmp_path / 'hub'}/lab/toy", PackageCorruptError, "content hash"),
    ]
    for ref, error, fragment in cases:
        with pytest.raises(error, match=fragment):
            host.load_adapter(ref, name=name)
        _assert_still_serving(host, name, before, model, slot)


def _plant(fake_hub, repo: str, folder: Path, extra: dict[str, bytes] | None = None) -> None:
    fake_hub.create(repo)
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    fake_hub.commit(repo, "planted", {**files, **(extra or {})})


HF_CASES = [c for c in CORRUPTIONS if c[0] not in ("link-outside", "too-many-files")]


def test_bad_packages_from_the_hugging_face_path_are_refused(serving, good, tmp_path, fake_hub):
    host, name, before = serving
    model, slot = host.llm.model, host.adapters[name]
    cache = tmp_path / "hf-cache"
    for i, (case_id, spoil, error, fragment) in enumerate(HF_CASES):
        bad = tmp_path / f"bad-{i}"
        shutil.copytree(good, bad)
        spoil(bad)
        _plant(fake_hub, f"lab/{case_id}", bad)
        with pytest.raises(error) as info:
            host.load_adapter(f"hf://lab/{case_id}", name=name, cache_dir=cache, hf_endpoint=fake_hub.url, token=False)
        assert fragment in str(info.value), case_id
        _assert_still_serving(host, name, before, model, slot)
    # names that escape the package, and a pickle, planted straight into a repo (never downloaded)
    for repo, extra, fragment in [("lab/traversal", {"../escape.txt": b"x"}, "escapes"),
                                  ("lab/pickle", {"weights.pt": b"\x80\x04."}, "pickle")]:
        _plant(fake_hub, repo, good, extra)
        with pytest.raises(UnsafePackageError, match=fragment):
            host.load_adapter(f"hf://{repo}", name=name, cache_dir=cache, hf_endpoint=fake_hub.url, token=False)
        _assert_still_serving(host, name, before, model, slot)
    with pytest.raises(AdapterPackageError, match="no repo 'lab/absent'"):
        host.load_adapter("hf://lab/absent", cache_dir=cache, hf_endpoint=fake_hub.url, token=False)
    _assert_still_serving(host, name, before, model, slot)


def test_force_loads_another_llm_checkpoint_with_a_warning(serving, good, tmp_path):
    host, name, before = serving
    other = tmp_path / "other"
    shutil.copytree(good, other)
    _edit_config(other, llm__fingerprint="sha256:" + "0" * 64)
    _rewrite_weights(other, lambda t: None, {"llm_fingerprint": "sha256:" + "0" * 64})
    with pytest.warns(ForcedLoadWarning, match="loading anyway") as record:
        host.load_adapter(str(other), name="forced", force=True)
    assert len([w for w in record if issubclass(w.category, ForcedLoadWarning)]) == 1  # warned once, not per check
    rows = {r["name"]: r for r in host.list_adapters()}
    assert rows["forced"]["fingerprint_match"] is False and rows[name]["fingerprint_match"] is True


def test_replacing_and_unloading_by_name(serving, tiny, registry, tmp_path):
    host, name, before = serving
    old = host.adapters[name].adapter
    host.load_adapter(str(save(make_adapter(tiny, registry, seed=9), tmp_path / "v2")), name=name)
    assert host.adapters[name].adapter is not old
    text, embeds = ask(host)
    assert not torch.equal(embeds, before[1])
    host.unload_adapter(name)
    assert host.list_adapters() == []


# ----- requests in flight keep their snapshot --------------------------------------------------------------


class _Recorder:
    """Which adapter (by the sign of the tokens it outputs) encoded each request's attachments, per thread."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.seen: dict[tuple[int, int], set[float]] = {}
        self.lock = threading.Lock()

    def hook(self, module, inputs, output):
        if isinstance(module, ModalityAdapter):
            values = set(torch.unique(torch.sign(output[0])).tolist())
            with self.lock:
                self.seen.setdefault((threading.get_ident(), getattr(self.local, "request", -1)), set()).update(values)


def test_concurrent_generation_while_swapping_adapters(tiny, registry, tmp_path):
    host = AnymalHost(tiny, registry=registry)
    a = constant_adapter(tiny, registry, 1.0, "toy")
    b = constant_adapter(tiny, registry, -1.0, "toy")
    pkg_a, pkg_b = save(a, tmp_path / "a"), save(b, tmp_path / "b")
    conversations = [[{"role": "user", "content": [Attachment(SIGNAL, modality="toy"), "describe this",
                                                   Attachment(SIGNAL[:7], modality="toy")]}],
                     [{"role": "user", "content": [Attachment(SIGNAL[3:], modality="toy"), "what is the person doing"]}]]
    expected = {}
    for value, adapter in ((1.0, a), (-1.0, b)):
        host.add_adapter(adapter)
        expected[value] = host.generate(conversations, max_new_tokens=6, **NON_EMPTY(host))
    assert expected[1.0] != expected[-1.0], "the two adapters must lead to different answers for this test"
    model = host.llm.model

    recorder = _Recorder()
    handle = torch.nn.modules.module.register_module_forward_hook(recorder.hook)
    results: list[tuple[int, int, list[str]]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def generate(worker: int) -> None:
        try:
            for request in range(12):
                recorder.local.request = request
                results.append((threading.get_ident(), request, host.generate(conversations, max_new_tokens=6, **NON_EMPTY(host))))
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    swaps = [0]

    def swap() -> None:
        try:
            i = 0
            while not done.is_set():
                if i % 4 == 3:
                    host.load_adapter(str(pkg_a if i % 8 == 3 else pkg_b), name="toy")
                else:
                    host.add_adapter(a if i % 2 == 0 else b, name="toy")
                i += 1
                swaps[0] = i
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    swapper = threading.Thread(target=swap)
    workers = [threading.Thread(target=generate, args=(w,)) for w in range(4)]
    try:
        swapper.start()
        for w in workers:
            w.start()
        swaps_before = swaps[0]
        for w in workers:
            w.join(timeout=120)
        swaps_during = swaps[0] - swaps_before
    finally:
        done.set()
        swapper.join(timeout=60)
        handle.remove()
    assert not errors, errors
    assert len(results) == 4 * 12  # every generation completed
    used = set()
    for thread, request, answers in results:
        values = recorder.seen[(thread, request)]
        assert len(values) == 1, f"request {request} on thread {thread} was encoded by several adapters: {values}"
        [value] = values
        assert answers == expected[value]  # the whole batch answered with that one adapter
        used.add(value)
    # Swaps really ran while generations were in flight (which adapter each request met is up to the scheduler).
    assert swaps_during >= 10, f"only {swaps_during} swaps happened during the generations"
    # and once the dust settles, a swap is seen by the next request, in both directions
    for value, adapter in ((-1.0, b), (1.0, a), (-1.0, b)):
        host.add_adapter(adapter, name="toy")
        assert host.generate(conversations, max_new_tokens=6, **NON_EMPTY(host)) == expected[value]
    assert host.llm.model is model


def test_bundled_auto_load_keeps_the_request_snapshot(tiny, registry, tmp_path):
    """A request whose second modality needs its bundled adapter must not pick up a swap that happens meanwhile
    for its first modality: the request's view is its snapshot plus the bundled slot, not the newer state."""
    host = AnymalHost(tiny, registry=registry)

    a = constant_adapter(tiny, registry, 1.0, "toy")
    b = constant_adapter(tiny, registry, -1.0, "toy")
    armed: list[bool] = []

    class Toy2(ToyModality):
        name = "toy2"
        file_extensions = (".toy2",)
        media_types = ("application/x-toy2",)

        def build_encoder(self, config):
            if armed and not armed[0]:  # runs while the bundled adapter is built, i.e. in the middle of the request
                armed[0] = True
                host.add_adapter(b, name="toy")
            return super().build_encoder(config)

    bundled = tmp_path / "toy2-bundled"

    class Toy2Plugin:
        @hookimpl
        def register_modalities(self, register):
            register(Toy2())

        @hookimpl
        def register_adapters(self, register):
            register("toy2-bundled", bundled)

    toy2_config = toy_config(tiny)
    toy2_config.name, toy2_config.modality = "toy2-bundled", "toy2"
    bundled.mkdir()
    (bundled / "anymal_adapter.json").write_text("{}")  # registration needs the file; the package is saved below
    registry.add_plugin(Toy2Plugin(), name="toy2-plugin")
    torch.manual_seed(0)
    save(ModalityAdapter.from_config(toy2_config, registry), bundled)
    host.add_adapter(a)
    armed.append(False)

    recorder = _Recorder()
    handle = torch.nn.modules.module.register_module_forward_hook(recorder.hook)
    try:
        recorder.local.request = 0
        conversation = [{"role": "user", "content": [Attachment(SIGNAL, modality="toy"), Attachment(SIGNAL, modality="toy2"),
                                                     Attachment(SIGNAL[:5], modality="toy"), "compare"]}]
        batch = host.embed([conversation])
    finally:
        handle.remove()
    assert armed == [True], "the bundled adapter should have been built during the request"
    assert host.active_adapter_name("toy") == "toy" and host.adapters["toy"].adapter is b  # the swap happened
    # both toy attachments were encoded by a (ones, up to its tiny input-dependent part): the adapter of the
    # request's snapshot
    ones = torch.ones(4, tiny.hidden_size)
    row = batch.inputs_embeds[0]
    near = lambda block, target: torch.allclose(block.float(), target, atol=0.1)  # noqa: E731
    hits = [i for i in range(row.shape[0] - 3) if near(row[i:i + 4], ones)]
    assert len(hits) == 2
    assert not any(near(row[i:i + 4], -ones) for i in range(row.shape[0] - 3))
    assert host.adapters["toy2-bundled"].kind == "bundled"
