"""Stage-2 packages (a projector plus a LoRA for the LLM) hot-loaded into a running host, the LoRA chosen per
request (tiny LLaMA, the toy plugin, LoRAs in peft's own format; no network).

The reference for "answers with its LoRA" is peft's own loading of the same folder (``PeftModel.from_pretrained``)
on a second copy of the LLM; the reference for "a request without it" is the host before any LoRA was loaded.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from adapters_hub import FolderHub, LORA_DIR, PackageCorruptError, UnsafePackageError, save_adapter_package
from anymal_host import AnymalHost, Attachment
from anymal_host.errors import AdapterNotFoundError
from anymal_host.lora import LoraMismatchError, check_lora
from anymal_host.testing import tiny_llm

from .test_hotload import NON_EMPTY, SIGNAL, make_adapter, save


def peft_lora(folder: Path, seed: int, r: int = 4, targets: tuple[str, ...] = ("q_proj", "v_proj"), **extra) -> Path:
    """A LoRA for the tiny LLaMA as peft itself saves it, with random (not zero) B matrices so that it changes
    answers visibly."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = get_peft_model(tiny_llm().model, LoraConfig(r=r, lora_alpha=4 * r, target_modules=list(targets),
                                                        init_lora_weights=False, **extra))
    model.save_pretrained(folder)
    return folder


def stage2_package(tiny, registry, folder: Path, seed: int, name: str = "toy-chat", **lora) -> Path:
    adapter = make_adapter(tiny, registry, seed=seed, name=name)
    save_adapter_package(folder, adapter.config, adapter.weights_for_saving(),
                         lora_dir=peft_lora(folder.parent / f"{folder.name}-peft", seed, **lora))
    return folder


def request(adapter: str | None = None) -> list[dict]:
    parts = [Attachment(SIGNAL, modality="toy", adapter=adapter)] if adapter else []
    return [{"role": "user", "content": [*parts, "describe this recording"]}]


def answer(host: AnymalHost, *conversations) -> list[str]:
    return host.generate(list(conversations), max_new_tokens=8, **NON_EMPTY(host))


def peft_reference(host: AnymalHost, package: Path, conversation) -> str:
    """The answer peft's own loading of the package's LoRA gives to the same embedded request."""
    from peft import PeftModel

    reference = tiny_llm()
    reference.model = PeftModel.from_pretrained(reference.model, str(package / LORA_DIR)).eval()
    batch = host._assemble([host.prepare(conversation)])
    return reference.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=8, **NON_EMPTY(host))[0]


@pytest.fixture
def host(registry):
    return AnymalHost(tiny_llm(), registry=registry)  # LoRAs change its LLM's modules: a private one


@pytest.fixture
def stage1(tiny, registry, tmp_path) -> Path:
    return save(make_adapter(tiny, registry, seed=3, name="toy-plain"), tmp_path / "plain")


def test_a_lora_package_answers_with_its_lora_and_other_requests_see_the_frozen_llm(host, tiny, registry, tmp_path,
                                                                                    stage1):
    host.load_adapter(str(stage1))
    frozen = answer(host, request(), request("toy-plain"))
    package = stage2_package(tiny, registry, tmp_path / "chat", seed=5)

    assert host.load_adapter(str(package)) == "toy-chat"
    [with_lora] = answer(host, request("toy-chat"))
    assert with_lora == peft_reference(host, package, request("toy-chat"))
    # the same projector without the LoRA answers differently: the LoRA is used
    without = AnymalHost(tiny_llm(), registry=registry)
    without.add_adapter(make_adapter(tiny, registry, seed=5, name="toy-chat"))
    assert answer(without, request("toy-chat")) != [with_lora]
    # requests without it, alone or batched with it, get exactly the frozen LLM's answers
    assert answer(host, request(), request("toy-plain")) == frozen
    mixed = answer(host, request(), request("toy-chat"), request("toy-plain"))
    assert mixed == [frozen[0], with_lora, frozen[1]]
    assert host.list_adapters(include_bundled=False)[1]["has_lora"] is True


def test_two_loras_serve_side_by_side_in_one_batch(host, tiny, registry, tmp_path):
    first = stage2_package(tiny, registry, tmp_path / "a", seed=5, name="toy-a")
    second = stage2_package(tiny, registry, tmp_path / "b", seed=6, name="toy-b", r=2, targets=("q_proj", "o_proj"))
    host.load_adapter(str(first))
    host.load_adapter(str(second))
    alone = [answer(host, request("toy-a"))[0], answer(host, request("toy-b"))[0]]
    assert alone[0] == peft_reference(host, first, request("toy-a"))
    assert alone[1] == peft_reference(host, second, request("toy-b"))
    assert answer(host, request("toy-a"), request("toy-b")) == alone


def test_unloading_deletes_the_lora_weights_and_restores_the_plain_llm(host, tiny, registry, tmp_path, stage1):
    plain_type = type(host.llm.model)
    host.load_adapter(str(stage1))
    frozen = answer(host, request("toy-plain"))
    host.load_adapter(str(stage2_package(tiny, registry, tmp_path / "chat", seed=5)))
    [lora] = host.llm.loras.names
    assert any(f".{lora}." in name for name, _ in host.llm.model.named_parameters())

    host.unload_adapter("toy-chat")
    assert host.llm.loras.names == frozenset()
    assert type(host.llm.model) is plain_type  # peft's layers are gone with the last LoRA
    assert not any("lora_" in name for name, _ in host.llm.model.named_parameters())
    assert answer(host, request("toy-plain")) == frozen


def test_replacing_a_lora_package_by_name_frees_the_old_lora(host, tiny, registry, tmp_path):
    host.load_adapter(str(stage2_package(tiny, registry, tmp_path / "v1", seed=5)))
    [old] = host.llm.loras.names
    second = stage2_package(tiny, registry, tmp_path / "v2", seed=7)
    host.load_adapter(str(second))
    [new] = host.llm.loras.names
    assert new != old and not any(f".{old}." in n for n, _ in host.llm.model.named_parameters())
    assert answer(host, request("toy-chat"))[0] == peft_reference(host, second, request("toy-chat"))


def test_a_request_whose_attachments_carry_two_loras_is_refused_clearly(host, tiny, registry, tmp_path):
    host.load_adapter(str(stage2_package(tiny, registry, tmp_path / "a", seed=5, name="toy-a")))
    host.load_adapter(str(stage2_package(tiny, registry, tmp_path / "b", seed=6, name="toy-b")))
    both = [{"role": "user", "content": [Attachment(SIGNAL, modality="toy", adapter="toy-a"),
                                         Attachment(SIGNAL, modality="toy", adapter="toy-b"), "compare"]}]
    with pytest.raises(ValueError, match="one request is answered with one LoRA"):
        answer(host, both)


def test_a_request_prepared_before_its_lora_was_unloaded_says_so(host, tiny, registry, tmp_path):
    host.load_adapter(str(stage2_package(tiny, registry, tmp_path / "chat", seed=5)))
    prepared = host.prepare(request("toy-chat"))
    host.unload_adapter("toy-chat")
    with pytest.raises(AdapterNotFoundError, match="no longer loaded"):
        host.answer([prepared], max_new_tokens=4)


def _misfit(targets_in_file: str):
    def spoil(lora: Path) -> None:
        path = lora / "adapter_model.safetensors"
        tensors = {k.replace("q_proj", targets_in_file): v for k, v in load_file(str(path)).items()}
        save_file(tensors, str(path))
    return spoil


def _reshape_b(lora: Path) -> None:
    path = lora / "adapter_model.safetensors"
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.endswith("q_proj.lora_B.weight"))
    tensors[key] = torch.zeros(64, tensors[key].shape[1])
    save_file(tensors, str(path))


def _drop_b(lora: Path) -> None:
    path = lora / "adapter_model.safetensors"
    tensors = load_file(str(path))
    tensors.pop(next(k for k in tensors if k.endswith("v_proj.lora_B.weight")))
    save_file(tensors, str(path))


def _nan(lora: Path) -> None:
    path = lora / "adapter_model.safetensors"
    tensors = load_file(str(path))
    next(iter(tensors.values())).fill_(float("nan"))
    save_file(tensors, str(path))


def _config(**changes):
    def spoil(lora: Path) -> None:
        path = lora / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return spoil


#: (id, how the LoRA folder is spoiled, the error, a fragment of its message)
BAD_LORAS = [
    ("module-not-in-this-llm", _misfit("qq_proj"), LoraMismatchError, "does not have"),
    ("shapes-of-another-llm", _reshape_b, LoraMismatchError, "do not fit that layer"),
    ("half-a-pair", _drop_b, LoraMismatchError, "not lora_B"),
    ("rank-absurd", _config(r=100000), LoraMismatchError, "rank"),
    ("not-a-lora", _config(peft_type="IA3"), LoraMismatchError, "not a peft LoRA config"),
    ("modules-to-save", _config(modules_to_save=["lm_head"]), LoraMismatchError, "modules_to_save"),
    ("dora", _config(use_dora=True), LoraMismatchError, "use_dora"),
    ("nan", _nan, PackageCorruptError, "NaN"),
    ("pickle-beside-it", lambda lora: (lora / "adapter_model.bin").write_bytes(b"\x80\x04K\x01."),
     UnsafePackageError, "pickle"),
]


@pytest.mark.parametrize("spoil, error, message", [c[1:] for c in BAD_LORAS], ids=[c[0] for c in BAD_LORAS])
def test_a_bad_lora_is_refused_before_its_weights_load_and_the_host_serves_on(host, tiny, registry, tmp_path, stage1,
                                                                            spoil, error, message):
    host.load_adapter(str(stage1))
    host.load_adapter(str(stage2_package(tiny, registry, tmp_path / "good", seed=5)))
    before = answer(host, request("toy-plain"), request("toy-chat"))
    names = host.llm.loras.names

    bad = stage2_package(tiny, registry, tmp_path / "bad", seed=6)
    spoil(bad / LORA_DIR)
    with pytest.raises(error, match=message):
        host.load_adapter(str(bad))  # under the name of the loaded one: it must stay
    assert host.llm.loras.names == names
    assert answer(host, request("toy-plain"), request("toy-chat")) == before


def test_check_lora_reads_no_weight_and_names_the_fix(tmp_path, tiny):
    folder = peft_lora(tmp_path / "lora", seed=1)
    spec = check_lora(folder, tiny.model)
    assert set(spec.ranks.values()) == {4} and len(spec.ranks) == 4  # q and v of two layers
    with pytest.raises(LoraMismatchError, match="train it again for this LLM"):
        _misfit("zz_proj")(folder)
        check_lora(folder, tiny.model)


def test_generations_in_flight_finish_before_a_lora_changes_the_llm(host, tiny, registry, tmp_path, stage1):
    """Loading a LoRA waits for running generations and new ones wait for the load: answers of the frozen LLM
    stay identical while LoRA packages come and go."""
    host.load_adapter(str(stage1))
    expected = answer(host, request("toy-plain"))
    packages = [stage2_package(tiny, registry, tmp_path / f"p{i}", seed=10 + i) for i in range(3)]
    seen, errors = [], []

    def ask() -> None:
        try:
            for _ in range(6):
                seen.append(answer(host, request("toy-plain"))[0])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for package in packages:
        host.load_adapter(str(package))
    host.unload_adapter("toy-chat")
    for t in threads:
        t.join()
    assert not errors and seen == expected * 12


def test_a_lora_package_from_a_folder_hub_round_trips(host, tiny, registry, tmp_path):
    package = stage2_package(tiny, registry, tmp_path / "chat", seed=5)
    hub = FolderHub(tmp_path / "hub")
    revision = hub.push(package, "lab/toy-chat", "stage 2")
    name = host.load_adapter(f"{tmp_path / 'hub'}/lab/toy-chat@{revision}")
    assert answer(host, request(name))[0] == peft_reference(host, package, request(name))


def test_over_http_a_lora_package_is_hot_loaded_and_chosen_per_request(registry, tiny, tmp_path, stage1):
    """``anymal serve``: POST /v1/adapters loads a stage-2 package; requests pinned to it are answered with its
    LoRA while concurrent requests without it get exactly what the server answered before it was loaded."""
    import concurrent.futures

    from anymal_host.serving import ServeConfig

    from .test_serve import KEY, Running, file_part, toy_file

    host = AnymalHost(tiny_llm(), registry=registry)
    host.load_adapter(str(stage1))
    server = Running(host, ServeConfig(api_key=KEY, batch_window_ms=50.0, default_max_tokens=8))
    try:
        client = server.client()

        def ask(adapter: str, text: str = "describe this recording") -> str:
            content = [file_part(toy_file()), {"type": "text", "text": text}]
            reply = client.chat.completions.create(model="default", messages=[{"role": "user", "content": content}],
                                                   extra_body={"anymal": {"adapters": {"toy": adapter}}},
                                                   max_tokens=8, temperature=0)
            assert reply.model_extra["anymal"]["adapters"] == {"toy": adapter}
            return reply.choices[0].message.content

        before = [ask("toy-plain"), ask("toy-plain", "what is the person doing")]
        package = stage2_package(tiny, registry, tmp_path / "chat", seed=5)
        status, _, row = server.call("POST", "/v1/adapters", {"ref": str(package)})
        assert status == 201 and row["name"] == "toy-chat" and row["has_lora"] is True

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(ask, "toy-chat"), pool.submit(ask, "toy-plain"),
                       pool.submit(ask, "toy-plain", "what is the person doing"), pool.submit(ask, "toy-chat")]
            lora_a, plain_a, plain_b, lora_b = [f.result() for f in futures]
        assert [plain_a, plain_b] == before
        assert lora_a == lora_b != before[0]
        assert server.call("DELETE", "/v1/adapters/toy-chat")[0] == 200
        assert host.llm.loras.names == frozenset()
        assert [ask("toy-plain"), ask("toy-plain", "what is the person doing")] == before
    finally:
        server.stop()
