"""Every accepted source decodes to the same 16 kHz mono clip; every kind of bad input is refused with a fix."""

from __future__ import annotations

import base64
import io
import os
import wave

import numpy as np
import pytest
import soundfile
import torch

from anymal_host import InvalidSignalError

from anymal_plugin_audio import audio_io
from anymal_plugin_audio.audio_io import MAX_BYTES, SAMPLE_RATE, read_audio

RATE = 22_050


def load(source: object) -> torch.Tensor:
    """What ``AudioModality.load`` returns: the decoded clip as ``[N, 1]`` float32."""
    return torch.from_numpy(read_audio(source)).reshape(-1, 1)


def tone(freq: float = 440.0, seconds: float = 1.0, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def encode(samples: np.ndarray, kind: str, rate: int = RATE) -> bytes:
    """The clip as the bytes of a ``kind`` file: soundfile for WAV/FLAC/OGG, PyAV for MP3/M4A."""
    buffer = io.BytesIO()
    if kind in ("wav", "flac", "ogg"):
        soundfile.write(buffer, samples, rate, format=kind.upper(), subtype={"ogg": "VORBIS"}.get(kind))
        return buffer.getvalue()
    import av

    with av.open(buffer, mode="w", format={"mp3": "mp3", "m4a": "ipod"}[kind]) as container:
        stream = container.add_stream({"mp3": "libmp3lame", "m4a": "aac"}[kind], rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(samples))


@pytest.mark.parametrize("kind", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_each_format_decodes_to_16k_mono_at_the_right_pitch(kind, tmp_path):
    data = encode(tone(440.0), kind)
    path = tmp_path / f"clip.{kind}"
    path.write_bytes(data)
    signal = load(path)
    assert signal.shape[1] == 1 and signal.dtype == torch.float32
    # 1 s at 22,050 Hz is 16,000 samples at 16 kHz (lossy codecs add a little padding at the edges)
    assert abs(signal.shape[0] - SAMPLE_RATE) < 0.1 * SAMPLE_RATE
    assert abs(dominant_frequency(signal[:, 0].numpy()) - 440.0) < 5.0  # resampled, not just relabelled
    assert torch.equal(signal, load(data))  # bytes read the same as the file


def test_a_misnamed_file_is_read_by_its_content(tmp_path):
    path = tmp_path / "really_flac.wav"
    path.write_bytes(encode(tone(), "flac"))
    assert load(path).shape[0] == SAMPLE_RATE


@pytest.mark.parametrize("kind", ["wav", "mp3"])
def test_openai_input_audio_parts(kind):
    data = encode(tone(), kind)
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": kind}}
    signal = load(part)
    assert torch.equal(signal, load(data))
    assert torch.equal(signal, load(part["input_audio"]))


def test_arrays_with_a_sample_rate_mix_down_and_resample():
    stereo = np.stack([tone(440.0), tone(440.0)], axis=1)
    mono = load((tone(440.0), RATE))
    assert torch.allclose(load((stereo, RATE)), mono, atol=1e-6)  # [N, C]
    assert torch.allclose(load((stereo.T.copy(), RATE)), mono, atol=1e-6)  # [C, N]
    assert torch.allclose(load({"array": tone(440.0), "sampling_rate": RATE}), mono)
    pcm = (tone(440.0) * 32768).astype(np.int16)
    assert torch.allclose(load((pcm, RATE)), mono, atol=1e-3)  # int16 PCM scaled to [-1, 1]
    at16k = load((tone(440.0, rate=SAMPLE_RATE), SAMPLE_RATE))
    assert torch.equal(at16k[:, 0], torch.from_numpy(tone(440.0, rate=SAMPLE_RATE)))  # 16 kHz is untouched


def test_silence_is_valid_input():
    signal = load((np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE))
    assert signal.shape == (SAMPLE_RATE, 1) and not signal.any()


def test_thirty_seconds_pass_and_longer_clips_are_refused_from_the_header():
    exactly = load(encode(tone(seconds=30.0, rate=8000), "wav", rate=8000))
    assert exactly.shape[0] == 30 * SAMPLE_RATE
    with pytest.raises(InvalidSignalError, match=r"30\.5 s long, over the limit of 30 s: send at most 30 s"):
        load(encode(tone(seconds=30.5, rate=8000), "wav", rate=8000))


def test_a_long_mp3_stops_decoding_at_the_limit():
    with pytest.raises(InvalidSignalError, match="over the limit of 30 s"):
        load(encode(tone(seconds=31.0, rate=8000), "mp3", rate=8000))


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.wav"
    with open(path, "wb") as file:  # sparse: no disk is used
        file.truncate(MAX_BYTES + 1)
    monkeypatch.setattr(audio_io, "_decode_bytes", lambda *a: pytest.fail("decoded a file over the limit"))
    with pytest.raises(InvalidSignalError, match="over the limit of 50331648 bytes"):
        load(path)


def test_huge_input_audio_is_refused_before_base64_decoding(monkeypatch):
    monkeypatch.setattr(base64, "b64decode", lambda *a, **k: pytest.fail("decoded data over the limit"))
    with pytest.raises(InvalidSignalError, match="input_audio data is"):
        load({"data": "A" * (MAX_BYTES // 3 * 4 + 8), "format": "wav"})


def _wav_with_header(rate: int = 16_000, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(max(channels, 1))
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(np.zeros(1600 * max(channels, 1), dtype=np.int16).tobytes())
    data = bytearray(buffer.getvalue())
    if channels == 0:
        data[22:24] = (0).to_bytes(2, "little")  # the channel count in the fmt chunk
    return bytes(data)


def _corrupt_header() -> bytes:
    data = bytearray(encode(tone(), "wav"))
    data[12:16] = b"junk"  # the fmt chunk's name: libsndfile cannot find the format
    return bytes(data)


BAD_INPUTS = {
    "empty bytes": (b"", "not audio"),
    "empty file": ("EMPTY_FILE", "not audio"),
    "corrupt header": (_corrupt_header(), "cannot be decoded"),
    "truncated flac": (encode(tone(), "flac")[:60], "cannot be decoded"),
    "corrupt mp3": (b"ID3" + bytes(300), "cannot be decoded|no audio samples|without an audio stream"),
    "NaN samples": ((np.full(1600, np.nan, dtype=np.float32), 16_000), "NaN or infinite"),
    "infinite samples": ((np.array([0.1] * 1599 + [np.inf], dtype=np.float32), 16_000), "NaN or infinite"),
    "integer PCM stored as float": ((np.full(1600, 12000.0, dtype=np.float32), 16_000), "divide integer PCM"),
    "zero channels (array)": ((np.zeros((1600, 0), dtype=np.float32), 16_000), "no audio channels"),
    "zero channels (wav header)": (_wav_with_header(channels=0), "channels|cannot be decoded"),
    "absurd sample rate (array)": ((np.zeros(1600, dtype=np.float32), 10**9), "outside 1000-384000 Hz"),
    "absurd sample rate (wav header)": (_wav_with_header(rate=500), "outside 1000-384000 Hz"),
    "sample rate not a number": ((np.zeros(1600, dtype=np.float32), "16k"), "needs a sample rate"),
    "array without a sample rate": (np.zeros(1600, dtype=np.float32), "needs its sample rate"),
    "too short": ((np.zeros(100, dtype=np.float32), 16_000), "shorter than the 20 ms"),
    "not audio at all (PNG)": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not audio in a format"),
    "not audio at all (text)": (b"hello, this is a text file\n" * 10, "starts with text"),
    "strings, not samples": ((np.array(["a", "b"] * 800), 16_000), "not samples"),
    "three-dimensional array": ((np.zeros((10, 10, 10), dtype=np.float32), 16_000), "has shape"),
    "nine channels": ((np.zeros((1600, 9), dtype=np.float32), 16_000), "more than 8"),
    "bad base64": ({"data": "!!!not base64!!!", "format": "wav"}, "not valid base64"),
    "format mismatch": ({"data": base64.b64encode(encode(tone(), "wav")).decode(), "format": "mp3"},
                        "set 'format' to 'wav'"),
    "dict of something else": ({"foo": 1}, "cannot read audio from a dict"),
    "None": (None, "no audio given"),
    "a number": (3.5, "cannot read audio from float"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_refused_with_what_and_how_to_fix(name, tmp_path):
    source, match = BAD_INPUTS[name]
    if isinstance(source, str) and source == "EMPTY_FILE":
        source = tmp_path / "empty.wav"
        source.write_bytes(b"")
    with pytest.raises(InvalidSignalError, match=match) as error:
        load(source)
    assert ":" in str(error.value)  # what, then the fix


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    pipe = tmp_path / "pipe.wav"
    os.mkfifo(pipe)
    with pytest.raises(InvalidSignalError, match="named pipe"):
        read_audio(pipe)

