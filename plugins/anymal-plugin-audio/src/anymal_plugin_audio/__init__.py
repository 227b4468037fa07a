"""anymal-plugin-audio: sound clips (speech, tones, beeps) through Whisper tiny.en's encoder, up to 30 s at 16 kHz.

The host finds it through the ``anymal`` entry point ``audio = "anymal_plugin_audio.plugin"``.
"""

from __future__ import annotations

from .modality import EXAMPLES_DIR, AudioModality, example_path

__all__ = ["EXAMPLES_DIR", "AudioModality", "example_path"]

__version__ = "0.1.0"
