"""A new user's stage-2 round trip with the real embedded LLM and the IMU plugin: train a LoRA (stage 2, started
from the bundled stage-1 adapter), push the package to a folder hub, hot-load it into a running host and into a
running server, and check that it answers with its LoRA while a concurrent request without it gets exactly the
frozen LLM's answer."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from adapters_hub import LORA_DIR, FolderHub
from anymal_host import AnymalHost, Attachment
from anymal_host.llm import LLM

pytest.importorskip("anymal_plugin_imu")
pytest.importorskip("peft")

QUESTION = "What is the person doing?"


def _example(name: str) -> Path:
    import anymal_plugin_imu

    return Path(anymal_plugin_imu.__file__).parent / "examples" / f"{name}.csv"


@pytest.fixture(scope="module")
def stage2_ref(tmp_path_factory) -> tuple[str, Path]:
    """A stage-2 package trained for a few steps on imu:hapt from the bundled adapter, pushed to a folder hub."""
    from anymal_host.training import TrainConfig, train

    root = tmp_path_factory.mktemp("stage2")
    host = AnymalHost(LLM.load(progress=False))  # stage 2 wraps this LLM in its LoRA: its own instance
    bundled = host.registry.bundled_adapters["imu-linear"]
    result = train(TrainConfig(dataset="imu:hapt", output_dir=str(root / "run"), stage=2, init_from=str(bundled),
                               projector="linear", encoder={}, steps=4, batch_size=4, lr=2e-3, warmup_steps=0,
                               eval_every=4, val_items=4, val_generate=0, max_train_items=64,
                               name="imu-chat", lora_r=8),
                   host, progress=False)
    assert (result.best_dir / LORA_DIR / "adapter_model.safetensors").is_file()
    hub = FolderHub(root / "hub")
    revision = hub.push(result.best_dir, "lab/imu-chat", "stage 2, 4 steps")
    return f"{root / 'hub'}/lab/imu-chat@{revision}", hub.root / "lab" / "imu-chat"


def _ask(host: AnymalHost, recording: str, adapter: str | None) -> list[dict]:
    return [{"role": "user", "content": [Attachment(_example(recording), adapter=adapter), QUESTION]}]


def test_a_pushed_stage2_package_answers_with_its_lora_beside_the_frozen_llm(stage2_ref):
    from peft import PeftModel

    ref, _ = stage2_ref
    host = AnymalHost(LLM.load(progress=False))
    host.load_adapter(str(host.registry.bundled_adapters["imu-linear"]), name="imu-plain")
    frozen = host.generate([_ask(host, "sitting", "imu-plain"), _ask(host, "walking", "imu-plain")],
                           max_new_tokens=16)
    name = host.load_adapter(ref)
    requests = [_ask(host, "sitting", "imu-plain"), _ask(host, "sitting", name), _ask(host, "walking", "imu-plain")]
    plain_a, with_lora, plain_b = host.generate(requests, max_new_tokens=16)
    assert [plain_a, plain_b] == frozen  # the frozen LLM's answers, token for token, in a batch with a LoRA

    # the LoRA answer is what peft's own loading of the package's lora/ gives for the same embedded request
    reference = LLM.load(progress=False)
    reference.model = PeftModel.from_pretrained(reference.model, str(Path(host.adapters[name].folder) / LORA_DIR))
    batch = host._assemble([host.prepare(requests[1])])
    assert reference.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=16) == [with_lora]
    assert with_lora.strip() and with_lora != frozen[0]  # four steps of LoRA already change the answer

    host.unload_adapter(name)
    assert host.llm.loras.names == frozenset() and not any("lora_" in n for n, _ in host.llm.model.named_parameters())
    assert host.generate([_ask(host, "sitting", "imu-plain"), _ask(host, "walking", "imu-plain")],
                         max_new_tokens=16) == frozen


def test_over_http_the_stage2_package_is_hot_loaded_and_concurrent_plain_requests_are_untouched(stage2_ref):
    pytest.importorskip("uvicorn")
    pytest.importorskip("openai")
    import base64

    from anymal_host.serving import ServeConfig

    from .test_serve import KEY, Running

    ref, _ = stage2_ref
    host = AnymalHost(LLM.load(progress=False))
    host.load_adapter(str(host.registry.bundled_adapters["imu-linear"]), name="imu-plain")
    server = Running(host, ServeConfig(api_key=KEY, batch_window_ms=100.0, default_max_tokens=16))
    data = base64.b64encode(_example("sitting").read_bytes()).decode()
    try:
        client = server.client()

        def ask(adapter: str) -> str:
            reply = client.chat.completions.create(
                model="default", max_tokens=16, temperature=0, extra_body={"anymal": {"adapters": {"imu": adapter}}},
                messages=[{"role": "user", "content": [
                    {"type": "file", "file": {"file_data": data, "filename": "sitting.csv"}},
                    {"type": "text", "text": QUESTION}]}])
            assert reply.model_extra["anymal"]["adapters"] == {"imu": adapter}
            return reply.choices[0].message.content

        frozen = ask("imu-plain")
        status, _, row = server.call("POST", "/v1/adapters", {"ref": ref, "name": "imu-chat"})
        assert status == 201 and row["has_lora"] is True
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, ["imu-chat", "imu-plain", "imu-chat", "imu-plain"]))
        assert answers[1] == answers[3] == frozen and frozen.strip()
        assert answers[0] == answers[2] and answers[0].strip()
        assert server.call("DELETE", "/v1/adapters/imu-chat")[0] == 200
        assert ask("imu-plain") == frozen
    finally:
        server.stop()
