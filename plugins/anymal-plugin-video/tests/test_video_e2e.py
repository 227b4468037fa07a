"""End to end with the real default LLM: one prompt that carries an image, a video and an IMU recording at once
is answered, each attachment's tokens placed where it stands in the prompt. The image and IMU attachments use
their plugins' bundled adapters; the video one an adapter built from this plugin's encoder (the real frozen
EfficientNet-Lite0 on every frame) with an untrained projector, since placement does not depend on training."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from anymal_plugin_video.modality import EXAMPLES_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(importlib.util.find_spec("anymal_plugin_imu") is None,
                                                  reason="needs anymal-plugin-imu installed")]


@pytest.fixture(scope="module")
def host():
    from adapters_hub import AdapterConfig, EncoderRef, LLMRef, ProjectorSpec
    from anymal_host import LLM, AnymalHost, ModalityAdapter, Registry

    import anymal_plugin_image.plugin as image_plugin
    import anymal_plugin_imu.plugin as imu_plugin
    import anymal_plugin_video.plugin as plugin

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANYMAL_LOAD_PLUGINS", "")  # the built-in projectors + these plugins, whatever else is installed
        registry = Registry.from_environment(extra_plugins=[plugin, image_plugin, imu_plugin])
    host = AnymalHost(LLM.load(progress=False), registry=registry)
    spec = registry.modality("video")
    encoder = spec.build_encoder(dict(spec.default_encoder))
    config = AdapterConfig(name="video-untrained", modality="video",
                           encoder=EncoderRef(name="frames", config={k: v for k, v in spec.default_encoder.items()
                                                                     if k != "name"}),
                           projector=ProjectorSpec(type="perceiver", in_dim=encoder.feature_dim,
                                                   out_dim=host.llm.hidden_size, options={"max_steps": 1568}),
                           llm=LLMRef(**host.llm.describe()), num_tokens=32, token_mode="fixed")
    torch.manual_seed(0)
    host.add_adapter(ModalityAdapter.from_config(config, registry).eval())
    return host


def test_an_image_a_video_and_an_imu_recording_in_one_prompt(host):
    from anymal_plugin_image import example_path as image_example
    from anymal_plugin_imu.modality import EXAMPLES_DIR as IMU_EXAMPLES

    sources = [("image", str(image_example("red_circle.png"))), ("video", str(EXAMPLES_DIR / "blue_square_up.mp4")),
               ("imu", str(IMU_EXAMPLES / "walking.csv"))]
    content = []
    for i, (_, source) in enumerate(sources):
        content += [{"type": "text", "text": f"Attachment {i + 1}:"}, {"type": "attachment", "source": source}]
    content.append({"type": "text", "text": "Describe each attachment in one sentence."})
    conversation = [{"role": "user", "content": content}]
    answer = host.generate([conversation], max_new_tokens=32)[0]
    assert answer.strip()
    assert host.active_adapter_name("image") == "image-perceiver" and host.active_adapter_name("imu") == "imu-linear"
    # each attachment's own tokens stand in the prompt once, in the order the attachments were given
    with torch.inference_mode():
        row = host.embed([conversation]).inputs_embeds[0]
        spans = []
        for modality, source in sources:
            tokens = host.adapters[host.active_adapter_name(modality)].adapter.encode([source])[0].to(row.dtype)
            starts = [i for i in range(row.shape[0] - len(tokens) + 1)
                      if torch.allclose(row[i:i + len(tokens)], tokens, atol=1e-5)]
            assert len(starts) == 1, modality
            spans.append((starts[0], len(tokens)))
    assert spans == sorted(spans) and all(a + n <= b for (a, n), (b, _) in zip(spans, spans[1:]))
