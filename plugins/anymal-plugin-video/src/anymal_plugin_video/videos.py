"""Video sources -> sampled RGB frames ``[T, 3, H, W]`` in ``[0, 1]``, or an :class:`InvalidSignalError` saying
what to fix.

Accepted sources (:func:`read_video`):

- a path or the bytes of an MP4/MOV/M4V, WebM/MKV, AVI or animated GIF file, decoded by PyAV (FFmpeg). The
  container is recognised from its first bytes, not from the file name, so a misnamed file still decodes and a
  still image or an audio file is refused by what it is;
- a ``data:video/mp4;base64,...`` URL, and an OpenAI Chat Completions ``file`` part,
  ``{"type": "file", "file": {"file_data": <base64 or data: URL>, "filename": "clip.mp4"}}`` (or its inner dict);
- an array or tensor of frames ``[T, H, W, 3]`` (uint8, or floats in [0, 1]); ``[T, H, W]`` is grayscale.

Frames are sampled, never all kept: ``frames=N`` (default :data:`DEFAULT_FRAMES`) picks N frames spread evenly
over the clip's presentation times; ``fps=R`` picks one frame every 1/R seconds instead, up to ``max_frames``
(default and ceiling :data:`MAX_FRAMES`; a longer clip is sampled evenly down to the cap). Sampling reads each
frame's own timestamp, so variable-frame-rate video (phones record it) is sampled by time, not by frame count.
Rotation metadata (the display matrix a phone writes for portrait video) is applied, as players do.

The rules of :mod:`anymal_host.sources` hold: a path is ``stat``-ed and refused by size before it is opened;
the frame size is checked from the stream header and the duration from the container before any frame is
decoded; a first pass reads packet timestamps only (no decoding) and stops at :data:`MAX_SECONDS`, so a small
file that claims or holds hours of video is refused without decoding it.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from anymal_host import InvalidSignalError
from anymal_host.sources import check_finite_range, check_source_size, format_bytes, open_source_file

if TYPE_CHECKING:  # torch loads when a function needs it, so importing this module does not
    import torch

__all__ = ["MAX_BYTES", "MAX_SECONDS", "MAX_PIXELS", "MIN_SIDE", "MAX_FRAMES", "DEFAULT_FRAMES", "MAX_ARRAY_FRAMES",
           "EXTENSIONS", "MEDIA_TYPES", "read_video", "sniff_container", "sample_times", "frames_from_array"]

#: Largest file or bytes source accepted: 256 MiB holds minutes of 1080p H.264; a longer clip is over
#: :data:`MAX_SECONDS` anyway.
MAX_BYTES = 256 << 20
#: Longest clip accepted. The encoder sees at most :data:`MAX_FRAMES` frames, so a longer video says less per
#: frame, and decoding it whole takes too long to serve.
MAX_SECONDS = 180.0
#: Largest frame accepted (checked from the stream header before decoding): 4096 x 4096, past 4K UHD. The
#: encoder sees 224 x 224.
MAX_PIXELS = 4096 * 4096
#: Smallest frame side accepted (the image plugin's minimum).
MIN_SIDE = 8
#: Most frames one clip is sampled to (the encoder runs the image backbone once per frame).
MAX_FRAMES = 32
#: Frames sampled when neither ``frames`` nor ``fps`` is given.
DEFAULT_FRAMES = 8
#: Most frames an array source may hold (``[T, H, W, 3]``): 3 minutes at 30 fps.
MAX_ARRAY_FRAMES = int(MAX_SECONDS * 30)
#: Most packets the timestamp pass reads: MAX_SECONDS at 240 fps. More means broken timestamps.
_MAX_PACKETS = int(MAX_SECONDS * 240)

EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")
MEDIA_TYPES = ("video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo", "video/avi")

_FORMAT_FIX = "send an MP4, MOV, WebM, MKV or AVI video, or an animated GIF"
_MAX_DATA_URL_CHARS = MAX_BYTES * 4 // 3 + 1024
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),", re.IGNORECASE)


def sniff_container(head: bytes) -> str | None:
    """The container of a file from its first bytes: ``mp4`` (MP4, MOV, M4V, 3GP), ``matroska`` (MKV, WebM),
    ``avi``, ``gif`` or None."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def _what_else(head: bytes) -> str:
    """What a file that is not a video container is, with the fix."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff" or head[8:12] == b"WEBP" or head[:2] == b"BM":
        return "it is a still image: attach it as an image (the image plugin reads it)"
    if (head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE") or head[:4] in (b"fLaC", b"OggS") or \
            head[:3] == b"ID3":
        return "it is an audio file: attach it as audio (the audio plugin reads it)"
    if not head:
        return "it is empty"
    sample = head[:64]
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in sample):
        return f"it starts with text ({sample[:24]!r}); {_FORMAT_FIX}"
    return f"it starts with the bytes {head[:8].hex(' ')}; {_FORMAT_FIX}"


def _long_fix() -> str:
    return f"send at most {MAX_SECONDS:g} s of video (cut longer videos into clips first)"


def _sampling(frames: Any, fps: Any, max_frames: Any) -> tuple[int | None, float | None, int]:
    """Validated sampling options: ``(frames or None, fps or None, cap)``."""
    def whole(name: str, value: Any, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= high:
            raise InvalidSignalError(f"video option {name}={value!r}: use a whole number from 1 to {high}")
        return int(value)

    cap = whole("max_frames", MAX_FRAMES if max_frames is None else max_frames, MAX_FRAMES)
    if fps is not None and frames is not None:
        raise InvalidSignalError("video options frames and fps both given: give frames=N (N frames spread over "
                                 "the clip) or fps=R (one frame every 1/R s, up to max_frames), not both")
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not 0 < float(fps) <= 60:
            raise InvalidSignalError(f"video option fps={fps!r}: use a rate above 0 and at most 60 frames a second")
        return None, float(fps), cap
    return whole("frames", DEFAULT_FRAMES if frames is None else frames, cap), None, cap


def sample_times(times: Sequence[float], *, frames: int | None = None, fps: float | None = None,
                 max_frames: int = MAX_FRAMES) -> list[int]:
    """Indices into ``times`` (sorted presentation times in seconds) of the frames to keep.

    ``frames=N``: the frames nearest N instants spread evenly from the first to the last frame. ``fps=R``: the
    frames nearest ``first + k / R``; more than ``max_frames`` of them are thinned evenly to ``max_frames``. A
    frame is taken once, so a clip with fewer frames than asked gives all it has.
    """
    if not times:
        return []
    first, last = float(times[0]), float(times[-1])
    if fps is not None:
        count = int((last - first) * fps + 1e-9) + 1
        targets = [first + k / fps for k in range(count)]
        if len(targets) > max_frames:
            targets = [targets[round(i)] for i in np.linspace(0, len(targets) - 1, max_frames)]
    else:
        n = min(frames or DEFAULT_FRAMES, max_frames)
        targets = list(np.linspace(first, last, n)) if n > 1 else [first]
    array = np.asarray(times, dtype=np.float64)
    chosen = sorted({int(np.abs(array - target).argmin()) for target in targets})
    return chosen


def read_video(source: Any, *, frames: int | None = None, fps: float | None = None,
               max_frames: int | None = None) -> torch.Tensor:
    """Decode, validate and sample ``source``: ``[T, 3, H, W]`` float32 in [0, 1], ``1 <= T <= max_frames``.
    Raises :class:`InvalidSignalError` naming the problem and the fix for anything else."""
    import torch

    count, rate, cap = _sampling(frames, fps, max_frames)
    if isinstance(source, str) and source[:5].lower() == "data:":
        return _decode_bytes(_parse_data_url(source, "video data: URL"), "video data: URL", count, rate, cap)
    if isinstance(source, (str, os.PathLike)):
        what = f"video file {str(source)!r}"
        with open_source_file(source, max_bytes=MAX_BYTES, what="video file", fix=_long_fix()) as file:
            data = file.read(MAX_BYTES + 1)
        check_source_size(len(data), max_bytes=MAX_BYTES, what=what, fix=_long_fix())  # it grew meanwhile
        return _decode_bytes(data, what, count, rate, cap)
    if isinstance(source, (bytes, bytearray, memoryview)):
        check_source_size(len(source), max_bytes=MAX_BYTES, what="video bytes", fix=_long_fix())
        return _decode_bytes(bytes(source), "video bytes", count, rate, cap)
    if isinstance(source, Mapping):
        return _read_file_part(source, count, rate, cap)
    if source is None:
        raise InvalidSignalError("no video given (None): pass a path, bytes, a data: URL, a file part or frames "
                                 "[T, H, W, 3]")
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return frames_from_array(source, frames=count, fps=rate, max_frames=cap)
    raise InvalidSignalError(f"cannot read a video from {type(source).__name__}: pass a path, bytes, a data: URL, "
                             "an OpenAI file part or frames [T, H, W, 3]")


def _parse_data_url(url: str, what: str) -> bytes:
    if len(url) > _MAX_DATA_URL_CHARS:
        raise InvalidSignalError(f"{what} is {format_bytes(len(url))} of text, over the limit for "
                                 f"{format_bytes(MAX_BYTES)} of video: {_long_fix()}")
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidSignalError(f"{what} has no ',' after its media type: write it as "
                                 "data:video/mp4;base64,<base64 of the file>")
    media_type = match["type"].lower()
    if media_type and not (media_type.startswith("video/") or media_type == "image/gif"
                           or media_type == "application/octet-stream"):
        raise InvalidSignalError(f"{what} carries {media_type!r}, not a video: send data:video/mp4;base64,...")
    if ";base64" not in match["params"].lower():
        raise InvalidSignalError(f"{what} is not base64-encoded: write it as data:video/mp4;base64,<base64>")
    return _b64(url[match.end():], what)


def _b64(text: str, what: str) -> bytes:
    check_source_size(len(text) // 4 * 3, max_bytes=MAX_BYTES, what=what, fix=_long_fix())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignalError(f"{what} is not valid base64: encode the file's bytes with base64 (no line "
                                 "breaks)") from None
    if not data:
        raise InvalidSignalError(f"{what} is empty: put the base64 of the video file there")
    return data


def _read_file_part(part: Mapping[str, Any], count: int | None, rate: float | None, cap: int) -> torch.Tensor:
    """An OpenAI ``file`` content part, or its inner ``{"file_data", "filename"}`` dict."""
    inner = part.get("file") if part.get("type") == "file" or "file" in part else part
    if not isinstance(inner, Mapping) or not isinstance(inner.get("file_data"), str):
        if isinstance(inner, Mapping) and "file_id" in inner:
            raise InvalidSignalError("a file part with a file_id refers to an uploaded file this host does not "
                                     "have: send the video itself as file_data (base64) with its filename")
        raise InvalidSignalError("a video file part needs {'type': 'file', 'file': {'file_data': <base64>, "
                                 "'filename': 'clip.mp4'}}")
    name = str(inner.get("filename") or "file part")
    text = inner["file_data"]
    what = f"video file part {name!r}"
    data = _parse_data_url(text, what) if text[:5].lower() == "data:" else _b64(text, what)
    return _decode_bytes(data, what, count, rate, cap)


def _decode_bytes(data: bytes, what: str, count: int | None, rate: float | None, cap: int) -> torch.Tensor:
    kind = sniff_container(data[:16])
    if kind is None:
        raise InvalidSignalError(f"{what} is not a video container this plugin reads: {_what_else(data[:16])}")
    if kind == "gif":  # FFmpeg's GIF demuxer leaves the size to the decoder: read the logical screen here
        _check_size(*(int.from_bytes(data[i:i + 2], "little") for i in (6, 8)), what)
    import av

    try:
        times = _packet_times(av, data, what, kind)
        chosen = sample_times(times, frames=count, fps=rate, max_frames=cap)
        wanted = {times[i] for i in chosen}
        rgb = _decode_frames(av, data, what, kind, wanted)
    except InvalidSignalError:
        raise
    except (av.FFmpegError, ValueError, TypeError, OSError, IndexError, ZeroDivisionError) as exc:
        raise InvalidSignalError(f"{what} looks like {kind.upper()} but cannot be decoded "
                                 f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}): the file "
                                 "is corrupt or truncated; re-export it") from None
    return _to_tensor(rgb)


def _open(av: Any, data: bytes, kind: str) -> Any:
    # GIF gets its demuxer by name: FFmpeg's probe scores a short GIF low and can guess another format.
    return av.open(io.BytesIO(data), mode="r", format="gif" if kind == "gif" else None)


def _video_stream(container: Any, what: str, kind: str) -> Any:
    if not container.streams.video:
        audio = " (it holds only audio: attach it as audio)" if container.streams.audio else ""
        raise InvalidSignalError(f"{what} is a {kind.upper()} container without a video stream{audio}: send a "
                                 "file with a video track")
    stream = container.streams.video[0]
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if width and height:  # 0 when the header does not say: then decoded frames are checked instead
        _check_size(width, height, what)
    return stream


def _check_size(width: int, height: int, what: str) -> None:
    if width * height > MAX_PIXELS:
        raise InvalidSignalError(f"{what} has {width} x {height} frames, over the limit of "
                                 f"{int(MAX_PIXELS ** 0.5)} x {int(MAX_PIXELS ** 0.5)}: scale it down (the encoder "
                                 "sees 224 x 224)")
    if min(width, height) < MIN_SIDE:
        raise InvalidSignalError(f"{what} has {width} x {height} frames, smaller than {MIN_SIDE} pixels on a side: "
                                 "send a video with frames of at least 8 x 8 pixels")


def _packet_times(av: Any, data: bytes, what: str, kind: str) -> list[Fraction]:
    """The presentation times of every video packet, sorted, from the packets alone (nothing is decoded)."""
    with _open(av, data, kind) as container:
        stream = _video_stream(container, what, kind)
        declared = None
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            declared = container.duration / 1_000_000
        if declared is not None and declared > MAX_SECONDS:
            raise InvalidSignalError(f"{what} is {declared:.1f} s long, over the limit of {MAX_SECONDS:g} s: "
                                     f"{_long_fix()}")
        base = stream.time_base or Fraction(1, 1)
        times: list[Fraction] = []
        for packet in container.demux(stream):
            if packet.pts is None:  # the flush packet at the end, or a packet without a timestamp
                continue
            times.append(packet.pts * base)
            if len(times) > _MAX_PACKETS or float(times[-1] - times[0]) > MAX_SECONDS:
                raise InvalidSignalError(f"{what} runs over the limit of {MAX_SECONDS:g} s (its header does not "
                                         f"say how long it is): {_long_fix()}")
    if not times:
        raise InvalidSignalError(f"{what} holds no video frames: send a video with at least one frame")
    return sorted(set(times))


def _decode_frames(av: Any, data: bytes, what: str, kind: str, wanted: set[Fraction]) -> list[np.ndarray]:
    """Decode in order and keep the frames whose presentation time is in ``wanted``, rotated for display."""
    kept: list[np.ndarray] = []
    with _open(av, data, kind) as container:
        stream = _video_stream(container, what, kind)
        stream.thread_type = "AUTO"
        base = stream.time_base or Fraction(1, 1)
        last = max(wanted)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            time = frame.pts * base
            if time in wanted:
                _check_size(frame.width, frame.height, what)
                rgb = frame.to_ndarray(format="rgb24")
                turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
                kept.append(np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb)
            if time >= last:
                break
    if not kept:
        raise InvalidSignalError(f"{what} holds no video frames that decode (its packets hold no picture): the "
                                 "file is corrupt or truncated; send a video with at least one frame")
    return kept


def _to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    import torch

    height, width = frames[0].shape[:2]
    # A stream whose frame size changes midway (allowed in WebM) is brought to the first frame's size.
    if any(f.shape[:2] != (height, width) for f in frames):
        from PIL import Image

        frames = [f if f.shape[:2] == (height, width) else
                  np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames]
    stacked = np.stack(frames)  # [T, H, W, 3] uint8
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()


def frames_from_array(source: Any, *, frames: int | None = DEFAULT_FRAMES, fps: float | None = None,
                      max_frames: int = MAX_FRAMES) -> torch.Tensor:
    """Frames ``[T, H, W, 3]`` (or ``[T, H, W]`` grayscale), uint8 or floats in [0, 1], sampled as a file is
    (an array has no timestamps: ``fps`` is refused) -> ``[T', 3, H, W]`` float32."""
    import torch

    if fps is not None:
        raise InvalidSignalError("video option fps needs timestamps, which an array of frames does not have: use "
                                 "frames=N, or send the video file")
    array = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else np.asarray(source)
    if array.ndim == 3:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise InvalidSignalError(f"video frames must be an array [T, H, W, 3] (RGB, channels last), got shape "
                                 f"{tuple(array.shape)}: stack the frames along the first axis")
    t, height, width = array.shape[:3]
    if t < 1:
        raise InvalidSignalError("video frames array holds zero frames: send at least one frame")
    if t > MAX_ARRAY_FRAMES:
        raise InvalidSignalError(f"video frames array holds {t} frames, over the limit of {MAX_ARRAY_FRAMES}: "
                                 f"{_long_fix()}")
    _check_size(width, height, "video frames array")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype.kind == "f":
        values = array.astype(np.float32)
        check_finite_range(values, what="video frames array", low=0.0, high=1.0,
                           index_names=("frame", "row", "column", "channel"),
                           fix="float frames are intensities in [0, 1]; send uint8 for 0-255 values")
    else:
        raise InvalidSignalError(f"video frames array has dtype {array.dtype}: send uint8 (0-255) or floats in "
                                 "[0, 1]")
    keep = sample_times(list(range(t)), frames=frames, max_frames=max_frames)
    return torch.from_numpy(np.ascontiguousarray(values[keep])).permute(0, 3, 1, 2).contiguous()
