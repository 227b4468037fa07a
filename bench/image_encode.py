"""What one image costs a request: decoding, preprocessing, the encoder and the projector, against the LLM's
prefill of the same request, measured side by side in one run with the real default LLM (SmolLM2-135M-Instruct)
and the image plugin's default encoder (EfficientNet-Lite0, frozen) with a Perceiver resampler.

    python bench/image_encode.py [--image PATH] [--repeats 7] [--num-tokens 32]

For one image (default: scikit-image's coffee photo shipped in the plugin's examples) it times, each the median
of ``--repeats`` runs after one warm-up:

- load: ``ImageModality.load`` (read + decode + convert), from the file's path;
- preprocess: ``ImageModality.preprocess`` (timm's eval transform to 224 x 224);
- encoder: the frozen backbone's forward, ``[1, 1, 3, 224, 224]`` -> ``[1, 49, 1280]``;
- projector: the Perceiver resampler, ``[1, 49, 1280]`` -> ``[1, N, 576]``;
- prefill: the LLM's forward over the assembled request (chat template, question and the N image tokens), which
  is what the first generated token waits for.

The projector is untrained: its cost does not depend on its weights. Prints the medians and the ratio of the
image path (load + preprocess + encoder + projector) to the prefill.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable


def median_ms(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``function()`` in ms over ``repeats`` runs after one warm-up, and its last result."""
    result = function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=None, help="image file (default: the plugin's coffee.jpg)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each part (default 7)")
    parser.add_argument("--num-tokens", type=int, default=32, help="Perceiver resampler tokens (default 32)")
    parser.add_argument("--question", default="What is in the image?")
    args = parser.parse_args()

    import torch

    from adapters_hub import AdapterConfig, EncoderRef, LLMRef, ProjectorSpec
    from anymal_host import LLM, AnymalHost, Attachment, ModalityAdapter
    from anymal_plugin_image import example_path

    image = args.image or example_path("coffee.jpg")
    host = AnymalHost(LLM.load(progress=False))
    llm = host.llm
    modality = host.registry.modality("image")
    encoder_options = {k: v for k, v in modality.default_encoder.items() if k != "name"}
    config = AdapterConfig(
        name="image-bench", modality="image",
        encoder=EncoderRef(name=modality.default_encoder["name"], config=encoder_options),
        projector=ProjectorSpec(type="perceiver", in_dim=1280, out_dim=llm.hidden_size),
        llm=LLMRef(**llm.describe()), num_tokens=args.num_tokens,
    )
    torch.manual_seed(0)
    adapter = ModalityAdapter.from_config(config, host.registry).eval()
    host.add_adapter(adapter)

    with torch.inference_mode():
        t_load, loaded = median_ms(lambda: modality.load(image), args.repeats)
        t_pre, pre = median_ms(lambda: modality.preprocess(loaded), args.repeats)
        frames, mask = modality.collate([pre])
        t_enc, (features, feature_mask) = median_ms(lambda: adapter.encoder(frames, mask), args.repeats)
        t_proj, (tokens, _) = median_ms(lambda: adapter.projector(features, feature_mask), args.repeats)
        batch = host.embed([[{"role": "user", "content": [Attachment(str(image)), args.question]}]])
        t_prefill, _ = median_ms(lambda: llm.forward(batch.inputs_embeds, batch.attention_mask), args.repeats)

    image_ms = t_load + t_pre + t_enc + t_proj
    print(f"image {image.name}: {tuple(loaded.shape[-2:])} px -> features {tuple(features.shape)} -> tokens "
          f"{tuple(tokens.shape)}; request {batch.inputs_embeds.shape[1]} positions; torch threads "
          f"{torch.get_num_threads()}; medians of {args.repeats}")
    for name, value in (("load", t_load), ("preprocess", t_pre), ("encoder", t_enc), ("projector", t_proj)):
        print(f"  {name:<11} {value:8.1f} ms")
    print(f"  {'image total':<11} {image_ms:8.1f} ms")
    print(f"  {'LLM prefill':<11} {t_prefill:8.1f} ms")
    print(f"image path / LLM prefill = {image_ms / t_prefill:.2f}")


if __name__ == "__main__":
    main()
