"""Audio sources -> a mono float32 waveform at 16 kHz, or an :class:`InvalidSignalError` saying what to fix.

Accepted sources (``read_audio``):

- a path or the bytes of a WAV, FLAC or OGG/Vorbis/Opus file (decoded by ``soundfile``/libsndfile), or of an
  MP3 or M4A/AAC file (decoded by PyAV/FFmpeg). The format is recognised from the first bytes, not from the
  file name, so a misnamed file still decodes and a non-audio file is refused by what it is;
- an OpenAI Chat Completions ``input_audio`` part, ``{"type": "input_audio", "input_audio": {"data":
  <base64>, "format": "wav" | "mp3"}}``, or its inner ``{"data", "format"}`` dict;
- an array with its sample rate: ``(array, sample_rate)`` or ``{"array": ..., "sampling_rate": ...}`` (the
  Hugging Face ``datasets`` Audio layout). Shape ``[N]``, ``[N, C]`` (soundfile's layout) or ``[C, N]`` with
  at most 8 channels; integer PCM is scaled to [-1, 1]. A bare array has no sample rate and is refused:
  guessing one would silently change the pitch and the speed.

The rules of :mod:`anymal_host.sources` hold: a path is ``stat``-ed and refused by size before it is opened,
bytes are refused by size before they are decoded, and the decoded duration is checked from the header
(soundfile) or while decoding (PyAV stops at the limit), so no source decodes without bound. Clips longer than
:data:`MAX_SECONDS` (Whisper's 30 s window) are refused rather than cut silently: the encoder sees one window,
and a silently cut clip would lose the part the question is about. Silence is valid input.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from typing import Any, Mapping

import numpy as np

from anymal_host import InvalidSignalError
from anymal_host.sources import check_finite_range, check_source_size, format_bytes, open_source_file

__all__ = ["SAMPLE_RATE", "MAX_SECONDS", "MIN_SECONDS", "MAX_SAMPLES", "MIN_SAMPLES", "MAX_BYTES",
           "MIN_RATE", "MAX_RATE", "MAX_CHANNELS", "read_audio", "sniff_format", "to_mono_16k"]

#: What Whisper's feature extractor expects: 16 kHz mono.
SAMPLE_RATE = 16_000
#: Whisper's window: the encoder sees 30 s, 1,500 frames of 20 ms.
MAX_SECONDS = 30.0
#: One encoder frame is 20 ms (two mel hops of 10 ms, halved by the stride-2 convolution): anything shorter
#: would give no real feature step at all.
MIN_SECONDS = 0.02
MAX_SAMPLES = int(MAX_SECONDS * SAMPLE_RATE)
MIN_SAMPLES = int(MIN_SECONDS * SAMPLE_RATE)
#: Sample rates outside this span are not audio recordings (or a header is corrupt): 1 kHz telephone-grade
#: audio at the low end, 384 kHz studio audio at the high end.
MIN_RATE, MAX_RATE = 1_000, 384_000
#: More channels than this is a surround or array recording the plugin does not know how to mix down.
MAX_CHANNELS = 8
#: 30 s of 8-channel 32-bit audio at 48 kHz is 46 MB; anything larger cannot hold an accepted clip in any
#: uncompressed format we read, so it is refused before it is read.
MAX_BYTES = 48 * 1024 * 1024
#: Float samples are nominally in [-1, 1]; a little over is clipping, far over is integer PCM stored as float.
MAX_AMPLITUDE = 16.0

_SOUNDFILE_FORMATS = ("wav", "flac", "ogg")
_PYAV_FORMATS = ("mp3", "m4a")
_FORMAT_FIX = "send WAV, FLAC, OGG, MP3 or M4A audio"


def sniff_format(head: bytes) -> str | None:
    """The container of a file from its first bytes: ``wav``, ``flac``, ``ogg``, ``mp3``, ``m4a`` or None."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "mp3"  # an ID3 tag, or an MPEG audio frame sync with a valid layer
    if head[4:8] == b"ftyp":
        return "m4a"
    return None


def _describe_head(head: bytes) -> str:
    if not head:
        return "it is empty"
    sample = head[:64]
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in sample):  # plain ASCII text: JSON, CSV, HTML...
        return f"it starts with text ({sample[:24]!r})"
    return f"it starts with the bytes {head[:8].hex(' ')}"


def read_audio(source: Any) -> np.ndarray:
    """Decode and validate ``source``; return mono float32 samples at 16 kHz, ``[N]`` with
    ``MIN_SAMPLES <= N <= MAX_SAMPLES``. Raises :class:`InvalidSignalError` for anything else."""
    if isinstance(source, (str, os.PathLike)):
        what = f"audio file {str(source)!r}"
        with open_source_file(source, max_bytes=MAX_BYTES, what="audio file", fix=_long_fix()) as file:
            data = file.read(MAX_BYTES + 1)
        check_source_size(len(data), max_bytes=MAX_BYTES, what=what, fix=_long_fix())  # it grew meanwhile
        return _decode_bytes(data, what)
    if isinstance(source, (bytes, bytearray, memoryview)):
        check_source_size(len(source), max_bytes=MAX_BYTES, what="audio bytes", fix=_long_fix())
        return _decode_bytes(bytes(source), "audio bytes")
    if isinstance(source, Mapping):
        if source.get("type") == "input_audio" or "input_audio" in source:
            return _read_input_audio(source.get("input_audio"))
        if "data" in source and "format" in source:
            return _read_input_audio(source)
        if "array" in source:
            return to_mono_16k(source["array"], source.get("sampling_rate", source.get("sample_rate")),
                               "audio array")
        raise InvalidSignalError(f"cannot read audio from a dict with keys {sorted(map(str, source))[:6]}: pass an "
                                 "OpenAI input_audio part {'data': <base64>, 'format': 'wav'} or "
                                 "{'array': samples, 'sampling_rate': rate}")
    if isinstance(source, tuple) and len(source) == 2 and not isinstance(source[1], (tuple, list)):
        return to_mono_16k(source[0], source[1], "audio array")
    if source is None:
        raise InvalidSignalError("no audio given (None): pass a path, bytes, an input_audio part or "
                                 "(array, sample_rate)")
    if hasattr(source, "shape") or isinstance(source, (list, tuple)):
        raise InvalidSignalError("an audio array needs its sample rate: pass (array, sample_rate) or "
                                 "{'array': array, 'sampling_rate': rate}")
    raise InvalidSignalError(f"cannot read audio from {type(source).__name__}: pass a path, bytes, an "
                             "input_audio part or (array, sample_rate)")


def _long_fix() -> str:
    return f"send at most {MAX_SECONDS:g} s of audio (cut longer recordings into clips first)"


def _read_input_audio(part: Any) -> np.ndarray:
    """An OpenAI ``input_audio`` part: ``{"data": <base64>, "format": "wav" | "mp3"}``."""
    if not isinstance(part, Mapping) or not isinstance(part.get("data"), str):
        raise InvalidSignalError("an input_audio part needs {'data': <base64 string>, 'format': 'wav' or 'mp3'}")
    text, declared = part["data"], str(part.get("format", "")).lower()
    # base64 is 4 characters per 3 bytes: refuse by size before decoding.
    check_source_size(len(text) // 4 * 3, max_bytes=MAX_BYTES, what="input_audio data", fix=_long_fix())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignalError("input_audio data is not valid base64: encode the file's bytes with base64 "
                                 "(no data: URL prefix, no line breaks)") from None
    found = sniff_format(data[:16])
    if declared and found and declared != found and {declared, found} != {"m4a", "mp4"}:
        raise InvalidSignalError(f"input_audio says format {declared!r} but the data is {found}: set 'format' to "
                                 f"{found!r}")
    return _decode_bytes(data, "input_audio data")


def _decode_bytes(data: bytes, what: str) -> np.ndarray:
    kind = sniff_format(data[:16])
    if kind is None:
        raise InvalidSignalError(f"{what} is not audio in a format this plugin reads ({_describe_head(data)}): "
                                 f"{_FORMAT_FIX}")
    if kind in _SOUNDFILE_FORMATS:
        samples, rate = _decode_soundfile(data, what, kind)
    else:
        samples, rate = _decode_pyav(data, what, kind)
    return to_mono_16k(samples, rate, what)


def _check_rate_and_length(rate: Any, frames: int, channels: int, what: str) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidSignalError(f"{what} declares a sample rate of {rate} Hz, outside {MIN_RATE}-{MAX_RATE} Hz: "
                                 "the header is corrupt or this is not an audio recording; re-export it (16 kHz "
                                 "or 44.1 kHz)")
    if channels < 1:
        raise InvalidSignalError(f"{what} has no audio channels: re-export it with at least one channel")
    if channels > MAX_CHANNELS:
        raise InvalidSignalError(f"{what} has {channels} channels, more than {MAX_CHANNELS}: mix it down to mono "
                                 "or stereo first")
    if frames > MAX_SECONDS * rate:
        raise InvalidSignalError(f"{what} is {frames / rate:.1f} s long, over the limit of {MAX_SECONDS:g} s: "
                                 f"{_long_fix()}")


def _decode_soundfile(data: bytes, what: str, kind: str) -> tuple[np.ndarray, int]:
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as file:
            # The header's frame count and rate are checked before one sample is decoded.
            _check_rate_and_length(file.samplerate, file.frames, file.channels, what)
            samples = file.read(dtype="float32", always_2d=True)
            rate = file.samplerate
    except InvalidSignalError:
        raise
    except (RuntimeError, ValueError, TypeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InvalidSignalError(f"{what} looks like {kind.upper()} but cannot be decoded ({reason}): the file is "
                                 f"corrupt or truncated; re-export it") from None
    return samples, rate


def _decode_pyav(data: bytes, what: str, kind: str) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    rate = channels = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format="mp3" if kind == "mp3" else None) as container:
            if not container.streams.audio:
                raise InvalidSignalError(f"{what} is a {kind.upper()} container without an audio stream: send the "
                                         "audio track")
            stream = container.streams.audio[0]
            rate, channels = int(stream.rate or 0), int(stream.channels or 0)
            _check_rate_and_length(rate, 0, channels, what)
            total = 0
            for frame in container.decode(stream):
                # planar float or integer: to_ndarray gives [channels, n] (planar) or [1, n * channels]
                array = frame.to_ndarray()
                if not frame.format.is_planar:
                    array = array.reshape(-1, channels).T
                if array.dtype.kind in "iu":
                    array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
                chunks.append(array.astype(np.float32, copy=False))
                total += array.shape[1]
                # Stop decoding at the limit: a small compressed file can hold hours of audio.
                _check_rate_and_length(rate, total, channels, what)
    except InvalidSignalError:
        raise
    except (av.FFmpegError, ValueError, TypeError, OSError, IndexError) as exc:
        raise InvalidSignalError(f"{what} looks like {kind.upper()} but cannot be decoded "
                                 f"({str(exc)[:160] or type(exc).__name__}): the file is corrupt or truncated; "
                                 "re-export it") from None
    if not chunks:
        raise InvalidSignalError(f"{what} holds no audio samples: send a recording of at least "
                                 f"{MIN_SECONDS * 1000:g} ms")
    return np.concatenate(chunks, axis=1).T, rate


def to_mono_16k(samples: Any, rate: Any, what: str) -> np.ndarray:
    """Validate samples ``[N]``, ``[N, C]`` or ``[C, N]`` at ``rate`` Hz; mix to mono; resample to 16 kHz."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise InvalidSignalError(f"{what} needs a sample rate in Hz (a number), got {rate!r}: pass "
                                 "(array, sample_rate)")
    if not np.isfinite(rate) or float(rate) != int(rate):
        raise InvalidSignalError(f"{what}: the sample rate {rate!r} is not a whole number of Hz")
    rate = int(rate)
    if hasattr(samples, "detach"):  # a torch tensor
        samples = samples.detach().cpu().numpy()
    try:
        array = np.asarray(samples)
    except (TypeError, ValueError) as exc:
        raise InvalidSignalError(f"{what} is not an array of samples ({exc}): pass a numeric array") from None
    if array.dtype.kind not in "biuf":
        raise InvalidSignalError(f"{what} holds {array.dtype} values, not samples: pass a numeric array")
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim == 2 and array.shape[1] > MAX_CHANNELS >= array.shape[0] > 0:
        array = array.T  # [C, N] (torch's layout) -> [N, C]
    elif array.ndim != 2:
        raise InvalidSignalError(f"{what} has shape {list(array.shape)}: pass [samples] or [samples, channels]")
    frames, channels = array.shape
    _check_rate_and_length(rate, frames, channels, what)
    if frames / rate < MIN_SECONDS:
        raise InvalidSignalError(f"{what} is {frames} sample(s) ({frames / rate * 1000:.1f} ms), shorter than the "
                                 f"{MIN_SECONDS * 1000:g} ms of one encoder frame: send a longer recording")
    if array.dtype.kind == "b":
        raise InvalidSignalError(f"{what} holds booleans, not samples: pass float samples in [-1, 1] or "
                                 "integer PCM")
    if array.dtype.kind in "iu":
        # integer PCM: full scale is the dtype's range (int16 -> 32768)
        info = np.iinfo(array.dtype)
        offset = (int(info.max) + 1) / 2 if array.dtype.kind == "u" else 0.0  # unsigned PCM is centred
        scale = (int(info.max) + 1) / 2 if array.dtype.kind == "u" else float(-int(info.min))
        array = (array.astype(np.float64) - offset) / scale
    check_finite_range(array, what=what, low=-MAX_AMPLITUDE, high=MAX_AMPLITUDE,
                       fix="samples are expected in [-1, 1]: divide integer PCM stored as float by 32768",
                       index_names=("sample", "channel"))
    mono = array.astype(np.float32).mean(axis=1)  # mix down: the average keeps the level of identical channels
    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    mono = mono[:MAX_SAMPLES]  # resampling may round one sample over
    if mono.size < MIN_SAMPLES:
        raise InvalidSignalError(f"{what} is {mono.size} sample(s) at 16 kHz, shorter than one encoder frame "
                                 f"({MIN_SAMPLES}): send a longer recording")
    return np.ascontiguousarray(mono, dtype=np.float32)


def describe_limits() -> str:
    """The limits in one line, for error messages and the README."""
    return (f"{MIN_SECONDS * 1000:g} ms to {MAX_SECONDS:g} s, {MIN_RATE}-{MAX_RATE} Hz, at most {MAX_CHANNELS} "
            f"channels, files up to {format_bytes(MAX_BYTES)}")

