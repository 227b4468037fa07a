"""``AudioModality``: a sound clip of up to 30 s, as a 16 kHz mono waveform for Whisper's encoder.

Decoding and validation live in :mod:`.audio_io` (every source kind, every limit); this module is the
``Modality`` contract around it. Whatever it is sent, ``load`` returns a valid signal or raises
:class:`anymal_host.InvalidSignalError` saying what is wrong and how to fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymal_host import InvalidSignalError, Modality, SignalSpec

from .audio_io import MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES, SAMPLE_RATE, read_audio

if TYPE_CHECKING:  # torch loads on first use, so registering the plugin does not import it
    import torch

    from anymal_host import Encoder

__all__ = ["AudioModality", "EXAMPLES_DIR", "example_path"]

#: Clips shipped with the plugin (package data): synthesized by ``python -m anymal_plugin_audio.data examples``.
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def example_path(name: str = "three_beeps") -> Path:
    """The shipped example clip ``examples/<name>.wav``."""
    path = EXAMPLES_DIR / f"{name}.wav"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EXAMPLES_DIR.glob("*.wav"))) or "none"
        raise FileNotFoundError(f"no shipped audio example {name!r}: the examples are {known}")
    return path


class AudioModality(Modality):
    """Sound clips: WAV, FLAC, OGG (soundfile), MP3, M4A (PyAV), bytes, OpenAI ``input_audio`` parts, or
    ``(array, sample_rate)``. ``load`` returns ``[N, 1]`` float32 at 16 kHz, mono, ``N <= 480,000`` (30 s);
    ``preprocess`` checks that shape and returns it unchanged, since Whisper's feature extractor (inside the
    encoder) does the rest."""

    name = "audio"
    examples_dir = EXAMPLES_DIR  # listed by `anymal modalities --examples`
    file_extensions = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a")
    media_types = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac",
                   "audio/ogg", "audio/opus", "audio/mpeg", "audio/mp3", "audio/mp4", "audio/x-m4a", "audio/aac")
    signal_spec = SignalSpec(sample_rate=float(SAMPLE_RATE), channels=1,
                             description=f"mono waveform in [-1, 1] at {SAMPLE_RATE} Hz, at most {MAX_SECONDS:g} s")
    description = "Sound clips (speech, tones, beeps) through Whisper tiny.en's encoder, up to 30 seconds at 16 kHz"
    default_encoder = {"name": "whisper-tiny.en", "frozen": True}

    def load(self, source: Any, **options: Any) -> torch.Tensor:
        """Decode and validate ``source``; return ``[N, 1]`` float32 samples at 16 kHz.

        :param options: the adapter's preprocessing options; this modality takes none and ignores them.
        :raises InvalidSignalError: for anything malformed, naming the problem and the fix.
        """
        import torch

        return torch.from_numpy(read_audio(source)).reshape(-1, 1)

    def preprocess(self, signal: torch.Tensor, **options: Any) -> torch.Tensor:
        """``[N, 1]`` from ``load`` -> the same ``[N, 1]`` float32 (checked)."""
        import torch

        if not isinstance(signal, torch.Tensor) or signal.dim() != 2 or signal.shape[1] != 1:
            shape = tuple(signal.shape) if hasattr(signal, "shape") else type(signal).__name__
            raise InvalidSignalError(f"audio preprocess expects the [N, 1] tensor that load returns, got {shape}: "
                                     "call load(source) first")
        if not MIN_SAMPLES <= signal.shape[0] <= MAX_SAMPLES:
            raise InvalidSignalError(f"audio preprocess got {signal.shape[0]} samples, outside the "
                                     f"{MIN_SAMPLES}-{MAX_SAMPLES} that load returns: call load(source) first")
        if not bool(torch.isfinite(signal).all()):
            raise InvalidSignalError("audio preprocess got NaN or infinite samples: call load(source) first")
        return signal.to(torch.float32)

    def build_encoder(self, config: Any) -> Encoder:
        from .encoder import build_encoder  # transformers and the weights load when an adapter is built

        return build_encoder(config)

    def example_input(self) -> Path:
        """The shipped three-beep clip: the host's checks go through the real file path, as an attachment would."""
        return example_path("three_beeps")
