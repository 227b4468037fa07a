"""What one image costs a request: decoding, preprocessing, the encoder and the projector, against the LLM's
prefill of the same request, measured side by side in one run with the real default LLM (SmolLM2-135M-Instruct)
and the image plugin's default encoder (EfficientNet-Lite0, frozen) with a Perceiver resampler.

    python bench/image_encode.py [--image PATH] [--repeats 7] [--num-tokens 32]

The image defaults to scikit-image's coffee photo shipped in the plugin's examples. What each part covers is
in ``bench/attachment_cost.py``; the last line is the ratio of the image path to the prefill.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attachment_cost import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=None, help="image file (default: the plugin's coffee.jpg)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each part (default 7)")
    parser.add_argument("--num-tokens", type=int, default=32, help="Perceiver resampler tokens (default 32)")
    parser.add_argument("--question", default="What is in the image?")
    args = parser.parse_args()

    from anymal_plugin_image import example_path

    measure("image", args.image or example_path("coffee.jpg"), args.question, args.repeats, args.num_tokens)


if __name__ == "__main__":
    main()
