"""``anymal serve``: a real server on 127.0.0.1 (uvicorn, in a thread) over the tiny LLM and the toy plugin,
driven with the real ``openai`` client and raw HTTP: answers plain and streamed, attachments as file parts,
per-request adapters, errors in OpenAI's shape, auth, limits, hot-loading during traffic, safety refusals,
metrics."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from anymal_host import ModalityAdapter, hookimpl
from anymal_host.serving import ServeConfig, create_app
from adapters_hub import save_adapter_package

from .conftest import toy_config

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

KEY = "test-key-123"


def toy_file(rows: int = 12, phase: float = 0.0) -> str:
    t = np.arange(rows) / 3 + phase
    text = "\n".join(f"{a:.4f} {b:.4f}" for a, b in zip(np.sin(t), np.cos(t)))
    return base64.b64encode(text.encode()).decode()


def file_part(data: str, filename: str = "walk.toy") -> dict[str, Any]:
    return {"type": "file", "file": {"file_data": data, "filename": filename}}


class Running:
    def __init__(self, host: Any, config: ServeConfig) -> None:
        self.server = uvicorn.Server(uvicorn.Config(create_app(host, config), host="127.0.0.1", port=0,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def client(self, key: str = KEY) -> Any:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)

    def call(self, method: str, path: str, body: Any = None, key: str | None = KEY,
             raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {key}"} if key else {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read().decode()
                status, headers = response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            text, status, headers = error.read().decode(), error.code, dict(error.headers)
        try:
            return status, headers, json.loads(text)
        except ValueError:
            return status, headers, text

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def serve(toy_host) -> Iterator[Any]:
    running: list[Running] = []

    def start(**options: Any) -> Running:
        config = ServeConfig(**{"api_key": KEY, "batch_window_ms": 30.0, "default_max_tokens": 8, **options})
        running.append(Running(toy_host, config))
        return running[-1]

    yield start
    for server in running:
        server.stop()


def test_the_openai_client_gets_answers_plain_and_streamed(serve, toy_host):
    server = serve()
    client = server.client()
    model = client.models.list().data[0].id
    assert model == toy_host.llm.name
    reply = client.chat.completions.create(model=model, max_tokens=6, messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "describe this"}, file_part(toy_file())]}])
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    expected = toy_host.chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": [
        "describe this", {"type": "attachment", "source": base64.b64decode(toy_file()), "modality": "toy"}]}],
        max_new_tokens=6)
    assert choice.message.content == expected  # the same answer as the Python API
    # usage counts the attachment's 4 tokens among the prompt's
    assert reply.usage.model_dump()["prompt_tokens_details"]["attachment_tokens"] == 4
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    stream = client.chat.completions.create(model=model, max_tokens=6, stream=True,
                                            stream_options={"include_usage": True}, messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "describe this"}, file_part(toy_file())]}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.prompt_tokens == reply.usage.prompt_tokens


def test_stop_sequences_and_settings(serve):
    client = serve().client()
    first = client.chat.completions.create(model="default", max_tokens=8, messages=[
        {"role": "user", "content": "hello there"}])
    text = first.choices[0].message.content
    if len(text) > 2:
        stopped = client.chat.completions.create(model="default", max_tokens=8, stop=[text[1:3]], messages=[
            {"role": "user", "content": "hello there"}])
        assert stopped.choices[0].message.content == text[:text.find(text[1:3])]
        assert stopped.choices[0].finish_reason == "stop"
    seeded = [client.chat.completions.create(model="default", max_tokens=8, temperature=1.0, top_p=0.9, seed=7,
                                             messages=[{"role": "user", "content": "hello"}]).choices[0].message.content
              for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_concurrent_requests_are_batched(serve):
    server = serve(batch_window_ms=200.0)
    client = server.client()

    def ask(i: int) -> str:
        return client.chat.completions.create(model="default", max_tokens=4, messages=[
            {"role": "user", "content": [{"type": "text", "text": f"describe {i}"},
                                         file_part(toy_file(phase=i))]}]).choices[0].message.content

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert len(answers) == 8
    status, _, text = server.call("GET", "/metrics")
    sizes = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
             if line.startswith("anymal_batch_size_")}
    assert sizes["anymal_batch_size_count"] < 8  # fewer LLM batches than requests
    assert sizes["anymal_batch_size_sum"] == 8
    assert 'anymal_requests_total{endpoint="/v1/chat/completions",status="200"} 8.0' in text


def test_errors_come_in_openai_shape(serve):
    server = serve()
    cases = [
        ({"messages": []}, 400, "messages must be a non-empty list"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, "role 'tool' is not supported"),
        ({"messages": [{"role": "user", "content": [{"type": "video_url"}]}]}, 400, "type 'video_url' is not supported"),
        ({"messages": [{"role": "user", "content": [file_part("@@@")]}]}, 400, "not valid base64"),
        ({"messages": [{"role": "user", "content": [file_part(toy_file(), "x.xyz")]}]}, 400, "no installed modality"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
         400, "remote image URLs are refused"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]},
         400, "no image modality: install anymal-plugin-image"),
        ({"messages": [{"role": "user", "content": [file_part(base64.b64encode(b"1 2 3").decode())]}]}, 400,
         "toy signals have shape"),
        ({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, "model 'gpt-9' is not served"),
        ({"max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}, 400, "max_tokens must be"),
        ({"n": 2, "messages": [{"role": "user", "content": "hi"}]}, 400, "n must be 1"),
        ({"anymal": {"adapters": {"toy": "nope"}}, "messages": [{"role": "user", "content": "hi"}]}, 404,
         "no adapter named 'nope'"),
    ]
    for body, status, message in cases:
        got, _, reply = server.call("POST", "/v1/chat/completions", body)
        assert got == status, (body, reply)
        assert set(reply["error"]) == {"message", "type", "param", "code"} and message in reply["error"]["message"]
    got, _, reply = server.call("POST", "/v1/chat/completions", raw=b"{not json")
    assert got == 400 and "not valid JSON" in reply["error"]["message"]


def test_auth_and_limits(serve, toy_host):
    server = serve(max_body_bytes=2048)
    assert server.call("GET", "/v1/models", key=None)[0] == 401
    status, headers, reply = server.call("GET", "/v1/models", key="wrong")
    assert status == 401 and reply["error"]["code"] == "invalid_api_key" and headers.get("www-authenticate") == "Bearer"
    assert server.call("GET", "/health", key=None)[0] == 200  # health needs no key
    status, _, reply = server.call("POST", "/v1/chat/completions", {"messages": [
        {"role": "user", "content": "x" * 4096}]})
    assert status == 413 and "over this server's limit" in reply["error"]["message"]
    with pytest.raises(ValueError, match="reachable from other machines: give an API key"):
        create_app(toy_host, ServeConfig(host="0.0.0.0"))
    open_server = serve(api_key=None)
    assert open_server.call("GET", "/v1/models", key=None)[0] == 200  # loopback without a key: chat is open
    status, _, reply = open_server.call("POST", "/v1/adapters", {"ref": "x"}, key=None)
    assert status == 401 and "adapter management needs an API key" in reply["error"]["message"]


def test_a_full_queue_answers_503_with_retry_after(serve):
    server = serve(max_queue=1, batch_window_ms=300.0, max_batch_size=1)
    client_requests = [{"max_tokens": 8, "messages": [{"role": "user", "content": f"hi {i}"}]} for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda body: server.call("POST", "/v1/chat/completions", body), client_requests))
    statuses = sorted(status for status, _, _ in results)
    assert statuses[0] == 200 and 503 in statuses
    busy = next(r for r in results if r[0] == 503)
    assert busy[1].get("retry-after") == "1" and "busy" in busy[2]["error"]["message"]


def test_adapters_are_hot_loaded_and_unloaded_over_http_during_traffic(serve, toy_host, tiny, registry, tmp_path):
    server = serve()
    torch.manual_seed(1)
    other = ModalityAdapter.from_config(toy_config(tiny).__class__(**{**toy_config(tiny).__dict__,
                                                                      "name": "toy-other"}), registry)
    folder = tmp_path / "toy-other"
    save_adapter_package(folder, other.config, other.weights_for_saving())
    stop = threading.Event()
    failures: list[Any] = []

    def traffic() -> None:
        client = server.client()
        while not stop.is_set():
            try:
                client.chat.completions.create(model="default", max_tokens=3, messages=[
                    {"role": "user", "content": [file_part(toy_file())]}])
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                failures.append(exc)

    workers = [threading.Thread(target=traffic) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        status, _, row = server.call("POST", "/v1/adapters", {"ref": str(folder), "name": "second"})
        assert status == 201 and row["name"] == "second" and row["modality"] == "toy"
        names = [r["name"] for r in server.call("GET", "/v1/adapters")[2]["data"]]
        assert "second" in names and "toy-meanpool" in names
        client = server.client()
        pinned = client.chat.completions.create(model="default", max_tokens=3, messages=[
            {"role": "user", "content": [file_part(toy_file())]}], extra_body={"anymal": {"adapters": {"toy": "second"}}})
        assert isinstance(pinned.choices[0].message.content, str)
        assert pinned.model_extra["anymal"] == {"adapters": {"toy": "second"}}  # which adapter answered
        assert server.call("DELETE", "/v1/adapters/second")[0] == 200
        status, _, reply = server.call("DELETE", "/v1/adapters/second")
        assert status == 404 and "no adapter named 'second'" in reply["error"]["message"]
        status, _, reply = server.call("POST", "/v1/adapters", {"ref": str(tmp_path / "missing")})
        assert status in (400, 404) and reply["error"]["message"]
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    assert not failures, failures[:3]
    _, _, metrics = server.call("GET", "/metrics")
    assert 'anymal_adapter_swaps_total{action="load"} 1.0' in metrics
    assert 'anymal_adapter_swaps_total{action="unload"} 1.0' in metrics


class Refuser:
    @hookimpl
    def check_input_text(self, text):
        return "questions about secrets are refused" if "secret" in text else None


def test_a_safety_refusal_is_a_content_filter_finish(serve, toy_host):
    toy_host.registry.add_plugin(Refuser(), name="refuser")
    client = serve().client()
    reply = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "a secret?"}])
    choice = reply.choices[0]
    assert choice.finish_reason == "content_filter" and choice.message.content is None
    assert choice.message.refusal == "questions about secrets are refused"
    chunks = list(client.chat.completions.create(model="default", stream=True, messages=[
        {"role": "user", "content": "a secret?"}]))
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert any(getattr(c.choices[0].delta, "refusal", None) for c in chunks if c.choices)
    assert client.chat.completions.create(model="default", max_tokens=2, messages=[
        {"role": "user", "content": "hello"}]).choices[0].finish_reason in ("stop", "length")


def test_prepared_requests_keep_the_adapter_they_started_with(toy_host, tiny, registry, tmp_path):
    path = tmp_path / "a.toy"
    path.write_bytes(base64.b64decode(toy_file()))
    conversation = [{"role": "user", "content": [{"type": "attachment", "source": str(path)}, "describe"]}]
    prepared = toy_host.prepare(conversation)
    torch.manual_seed(5)
    toy_host.add_adapter(ModalityAdapter.from_config(toy_config(tiny), registry), name="toy-meanpool")  # swapped
    [answer] = toy_host.answer([prepared], max_new_tokens=4)
    old = prepared.tokens[0]
    new = toy_host.prepare(conversation).tokens[0]
    assert not torch.allclose(old, new)  # the swap changed the tokens of later requests only
    assert answer.attachment_tokens == 4 and answer.prompt_tokens > 4


def test_requests_over_the_timeout_get_504(serve):
    server = serve(request_timeout_s=0.05, batch_window_ms=500.0)
    status, _, reply = server.call("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    assert status == 504 and reply["error"]["code"] == "timeout"


def test_shutting_down_finishes_requests_in_flight_and_refuses_new_ones(serve):
    server = serve(batch_window_ms=800.0)  # the request waits in the batcher while the server is told to stop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(server.call, "POST", "/v1/chat/completions",
                                {"max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]})
        time.sleep(0.3)
        server.server.should_exit = True  # what SIGTERM does
        status, _, reply = in_flight.result(timeout=60)
    assert status == 200 and reply["choices"][0]["message"]["content"] is not None
    server.thread.join(30)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{server.url}/health", timeout=5)
