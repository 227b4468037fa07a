"""What one 5-second clip costs a request: decoding and resampling, the log-mel features and Whisper tiny.en's
encoder, and the projector, against the LLM's prefill of the same request, measured side by side in one run
with the real default LLM (SmolLM2-135M-Instruct) and a Perceiver resampler.

    python bench/audio_encode.py [--clip PATH] [--repeats 7] [--num-tokens 32]

Without ``--clip`` it writes a 5-second 44.1 kHz stereo WAV to a temporary folder (eSpeak NG counting from one
to ten, with noise), so that load decodes, mixes down and resamples as it would for a user's recording. The
encoder's cost does not depend on the clip's length: Whisper encodes a full 30 s window. What each part covers
is in ``bench/attachment_cost.py``; the last line is the ratio of the audio path to the prefill.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from attachment_cost import measure


def five_second_clip(folder: Path) -> Path:
    """A 5 s, 44.1 kHz, 16-bit stereo WAV of eSpeak NG counting, over a faint noise floor."""
    import numpy as np
    import soundfile
    import soxr

    from anymal_plugin_audio.data import synthesize

    speech, rate = synthesize("one, two, three, four, five, six, seven, eight, nine, ten", "en-us", 150, 50)
    speech = soxr.resample(speech, rate, 44_100)
    clip = np.zeros(5 * 44_100, dtype=np.float32)
    clip[: min(len(speech), len(clip))] = speech[: len(clip)]
    clip += np.random.default_rng(0).normal(0.0, 1e-3, clip.shape).astype(np.float32)
    path = folder / "counting-5s.wav"
    soundfile.write(path, np.stack([clip, 0.8 * clip], axis=1), 44_100, subtype="PCM_16")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=None, help="audio file (default: a generated 5 s WAV)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each part (default 7)")
    parser.add_argument("--num-tokens", type=int, default=32, help="Perceiver resampler tokens (default 32)")
    parser.add_argument("--question", default="What is said in this recording?")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        measure("audio", args.clip or five_second_clip(Path(folder)), args.question, args.repeats, args.num_tokens)


if __name__ == "__main__":
    main()
