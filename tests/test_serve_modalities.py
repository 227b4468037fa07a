"""Every content-part kind through a real server: an image as a data: URL (and, when allowed, an http URL the
server fetches), audio as input_audio, an IMU recording and a video clip as file parts, in one request, each
routed to its modality's plugin and encoded by an adapter built from the plugin's real encoder (over the tiny
LLM, so the answers mean nothing; the routing and the token counts do)."""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import threading

import pytest
import torch

from adapters_hub import AdapterConfig, EncoderRef, LLMRef, ProjectorSpec
from anymal_host import AnymalHost, ModalityAdapter, Registry
from anymal_host.serving import ServeConfig
from anymal_host.testing import tiny_llm

from .test_serve import KEY, Running

PLUGINS = ("anymal_plugin_image", "anymal_plugin_audio", "anymal_plugin_imu", "anymal_plugin_video")
pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(p) is None for p in PLUGINS),
                                reason="needs the image, audio, IMU and video plugins installed")
TOKENS = {"image": 3, "audio": 5, "video": 6}  # perceiver tokens; the IMU's linear projector: one per step


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> AnymalHost:
    import os

    os.environ.setdefault("ANYMAL_HOME", str(tmp_path_factory.mktemp("home")))
    registry = Registry.from_environment()
    llm = tiny_llm()
    host = AnymalHost(llm, registry=registry)
    torch.manual_seed(0)
    for modality in ("image", "audio", "imu", "video"):
        spec = registry.modality(modality)
        encoder = spec.build_encoder(dict(spec.default_encoder))
        perceiver = modality in TOKENS
        config = AdapterConfig(
            name=f"{modality}-test", modality=modality,
            encoder=EncoderRef(name=spec.default_encoder["name"],
                               config={k: v for k, v in spec.default_encoder.items() if k != "name"}),
            projector=ProjectorSpec(type="perceiver" if perceiver else "linear", in_dim=encoder.feature_dim,
                                    out_dim=llm.hidden_size, options={"depth": 1, "heads": 2} if perceiver else {}),
            llm=LLMRef(**llm.describe()), num_tokens=TOKENS.get(modality, 1),
            token_mode="fixed" if perceiver else "per_step")
        host.add_adapter(ModalityAdapter.from_config(config, registry).eval())
    return host


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_every_content_part_kind_in_one_request(host):
    from anymal_plugin_audio.modality import EXAMPLES_DIR as AUDIO
    from anymal_plugin_image import example_path as image_example
    from anymal_plugin_imu.modality import EXAMPLES_DIR as IMU
    from anymal_plugin_video import example_path as video_example

    server = Running(host, ServeConfig(api_key=KEY))
    try:
        content = [
            {"type": "text", "text": "Compare these."},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(image_example())}"}},
            {"type": "input_audio", "input_audio": {"data": b64(AUDIO / "seven.wav"), "format": "wav"}},
            {"type": "file", "file": {"file_data": b64(IMU / "walking.csv"), "filename": "walking.csv"}},
            {"type": "file", "file": {"file_data": f"data:video/mp4;base64,{b64(video_example())}",
                                      "filename": "clip.mp4"}},
        ]
        reply = server.client().chat.completions.create(model="default", max_tokens=3,
                                                        messages=[{"role": "user", "content": content}])
        imu_tokens = host.adapters["imu-test"].adapter.encode([str(IMU / "walking.csv")])[0].shape[0]
        usage = reply.usage.model_dump()
        assert usage["prompt_tokens_details"]["attachment_tokens"] == sum(TOKENS.values()) + imu_tokens
        # a bad attachment of a real plugin is a 400 naming the problem
        status, _, body = server.call("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": base64.b64encode(b"not a video").decode(),
                                      "filename": "clip.mp4"}}]}]})
        assert status == 400 and body["error"]["code"] == "invalid_attachment"
        assert "not a video container" in body["error"]["message"]
    finally:
        server.stop()


def test_remote_image_urls_are_fetched_only_when_allowed(host, tmp_path):
    from anymal_plugin_image import example_path as image_example

    (tmp_path / "red.png").write_bytes(image_example().read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{files.server_address[1]}/red.png"
    body = {"max_tokens": 2, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "what is it?"}]}]}
    refusing, allowing = Running(host, ServeConfig(api_key=KEY)), Running(host, ServeConfig(api_key=KEY,
                                                                                        allow_remote_urls=True))
    try:
        status, _, reply = refusing.call("POST", "/v1/chat/completions", body)
        assert status == 400 and "remote image URLs are refused" in reply["error"]["message"]
        status, _, reply = allowing.call("POST", "/v1/chat/completions", body)
        assert status == 200 and reply["usage"]["prompt_tokens_details"]["attachment_tokens"] == TOKENS["image"]
    finally:
        refusing.stop()
        allowing.stop()
        files.shutdown()
