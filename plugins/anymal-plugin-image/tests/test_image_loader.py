"""The loader reads every accepted kind of image the same way, and refuses each kind of bad input with a clear
InvalidSignalError that names the problem and the fix, checking sizes before anything is decoded."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from anymal_host import InvalidSignalError
from anymal_host.testing import check_modality

import anymal_plugin_image.images as images
from anymal_plugin_image import ImageModality

MODALITY = ImageModality()


def _encode(image: Image.Image, fmt: str, **save: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _picture(width: int = 40, height: int = 30) -> Image.Image:
    """An RGB picture whose left half is red and right half blue, so orientation and colour are checkable."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(array, "RGB")


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring ``width x height`` RGB, with one tiny IDAT: a decompression bomb's
    header, 60 bytes long."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


# ----- what it accepts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "exact"), [("PNG", True), ("BMP", True), ("TIFF", True), ("GIF", True),
                                            ("WEBP", False), ("JPEG", False)])
def test_every_format_reads_to_the_same_picture(fmt: str, exact: bool) -> None:
    reference = MODALITY.load(np.asarray(_picture()))
    save = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    image = MODALITY.load(_encode(_picture(), fmt, **save))
    assert image.shape == (1, 3, 30, 40) and image.dtype == torch.float32
    if exact:
        assert torch.equal(image, reference)
    else:  # lossy: chroma subsampling blurs the red/blue edge, but the picture is the same
        assert (image - reference).abs().mean() < 0.05


def test_a_path_bytes_a_data_url_and_arrays_give_the_same_tensor(tmp_path: Path) -> None:
    data = _encode(_picture(), "PNG")
    path = tmp_path / "p.png"
    path.write_bytes(data)
    image = MODALITY.load(path)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    array = np.asarray(_picture())
    for other in (MODALITY.load(str(path)), MODALITY.load(data), MODALITY.load(bytearray(data)), MODALITY.load(url),
                  MODALITY.load(array), MODALITY.load(array.astype(np.float32) / 255),
                  MODALITY.load(torch.from_numpy(array.copy()).permute(2, 0, 1)), MODALITY.load(image),
                  MODALITY.load(_picture())):
        assert torch.allclose(other, image, atol=1e-6)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a portrait stored sideways, as phones do
    image = MODALITY.load(_encode(_picture(40, 30), "JPEG", quality=95, exif=exif))
    assert image.shape == (1, 3, 40, 30)  # upright: taller than wide
    top, bottom = image[0, :, 5, 15], image[0, :, 35, 15]
    assert top[0] > 0.8 and bottom[2] > 0.8  # the red half ended up on top


def test_an_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = MODALITY.load(buffer.getvalue())
    assert image.shape == (1, 3, 20, 20)
    assert torch.allclose(image[0, :, 10, 10], torch.tensor([1.0, 0.0, 0.0]), atol=0.02)


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 32 * 16).reshape(16, 32).astype(np.uint16)
    image = MODALITY.load(_encode(Image.fromarray(ramp), "PNG"))
    assert image.shape == (1, 3, 16, 32)
    assert image.min() == 0.0 and image.max() == 1.0
    assert torch.allclose(image[0, 0], torch.from_numpy(ramp / 65535.0).float(), atol=1e-6)
    assert torch.allclose(MODALITY.load(ramp), image)  # a uint16 array reads the same


def test_palette_grayscale_and_alpha_become_rgb() -> None:
    palette = _picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert torch.allclose(MODALITY.load(_encode(palette, "PNG")), MODALITY.load(np.asarray(_picture())), atol=0.02)
    gray = MODALITY.load(_encode(Image.new("L", (16, 16), 128), "PNG"))
    assert torch.allclose(gray, torch.full((1, 3, 16, 16), 128 / 255))
    transparent = MODALITY.load(_encode(Image.new("RGBA", (16, 16), (255, 0, 0, 0)), "PNG"))
    assert torch.allclose(transparent, torch.ones(1, 3, 16, 16))  # fully transparent shows the white behind it
    half = MODALITY.load(np.dstack([np.zeros((16, 16, 3), np.uint8), np.full((16, 16), 255, np.uint8)]))
    assert torch.equal(half, torch.zeros(1, 3, 16, 16))  # opaque black stays black


def test_preprocess_gives_the_encoder_input_and_keeps_the_whole_picture() -> None:
    wide = np.zeros((50, 200, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)  # a red strip at the far left would be cut by a centre crop
    out = MODALITY.preprocess(MODALITY.load(wide))
    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    centre_row = out[0, 0, 112]  # red channel, normalised (x - 127) / 128
    assert centre_row[:10].min() > 0.9  # the red strip is still there
    assert out[0, :, 0, 112].abs().max() < 0.01  # padding above the picture is the mean colour (0 once normalised)


def test_preprocess_size_gives_a_finer_grid_of_the_same_picture() -> None:
    wide = np.zeros((50, 200, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)
    out = MODALITY.preprocess(MODALITY.load(wide), size=320)
    assert out.shape == (1, 3, 320, 320)
    assert out[0, 0, 160, :14].min() > 0.9 and out[0, :, 0, 160].abs().max() < 0.01  # resized to fit, padded
    # the adapter records no size: the model's own, as before
    assert torch.equal(MODALITY.preprocess(MODALITY.load(wide), size=None), MODALITY.preprocess(MODALITY.load(wide)))
    for bad in (True, "big", 8, 5000, 320.0):
        with pytest.raises(InvalidSignalError, match=r"size=.*give the side in pixels, an integer from 32 to 1024"):
            MODALITY.preprocess(MODALITY.load(wide), size=bad)


# ----- what it refuses -----------------------------------------------------------------------------------------

def _bad(tmp_path: Path) -> list[tuple[str, Any, str]]:
    png = _encode(_picture(), "PNG")
    jpeg = _encode(_picture(), "JPEG")
    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, I am not an image\n")
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as file:  # sparse: over the byte limit without writing 32 MiB
        file.truncate(images.MAX_BYTES + 1)
    float_tiff = _encode(Image.fromarray(np.full((16, 16), 0.5, np.float32), "F"), "TIFF")
    return [
        ("not an image", tmp_path / "text.png", "not an image this plugin reads"),
        ("a PDF", b"%PDF-1.4\n" + bytes(200), "not an image this plugin reads"),
        ("a truncated PNG", png[: len(png) // 2], "truncated|corrupt|broken"),
        ("a truncated JPEG", jpeg[: len(jpeg) // 2], "truncated|corrupt|broken"),
        ("a decompression bomb", _png_header_only(50_000, 50_000), "decompression bomb.*2500000000 pixels"),
        ("a zero-size file", tmp_path / "empty.png", "empty"),
        ("zero bytes", b"", "empty"),
        ("a file over the byte limit", huge, "over the limit of 33554432 bytes"),
        ("bytes over the byte limit", b"\0" * (images.MAX_BYTES + 1), "over the limit of 33554432 bytes"),
        ("a folder named x.png", tmp_path / "folder.png", "is a folder"),
        ("a named pipe named x.png", tmp_path / "pipe.png", "named pipe"),
        ("a missing file", tmp_path / "missing.png", "does not exist"),
        ("a float (mode F) TIFF", float_tiff, "pixel mode 'F'"),
        ("a 1000 x 10 strip", _encode(Image.new("RGB", (1000, 10)), "PNG"), "more elongated than 32:1"),
        ("a 1 x 1 image", _encode(Image.new("RGB", (1, 1)), "PNG"), "smaller than 8 pixels"),
        ("an array of 5 channels", np.zeros((16, 16, 5), np.uint8), "1, 3 or 4 channels"),
        ("a batch of images", np.zeros((2, 3, 16, 16), np.float32), "one image"),
        ("an int64 array", np.zeros((16, 16, 3), np.int64), "no fixed brightness range"),
        ("a string array", np.array([["a"] * 16] * 16), "holds numbers"),
        ("an array with NaN", np.full((16, 16, 3), np.nan, np.float32), "NaN"),
        ("floats over 1", np.full((16, 16, 3), 255.0, np.float32), "divide 8-bit values by 255"),
        ("None", None, "None"),
        ("a data: URL of text", "data:text/plain;base64,aGVsbG8=", "not an image"),
        ("a data: URL without base64", "data:image/png,abc", "not base64"),
        ("a data: URL of bad base64", "data:image/png;base64,@@@@", "invalid base64"),
        ("a data: URL with no comma", "data:image/png;base64", "no ','"),
        ("an empty data: URL", "data:image/png;base64,", "empty"),
        ("a data: URL of garbage", "data:image/png;base64," + base64.b64encode(bytes(100)).decode(),
         "not an image this plugin reads"),
    ]


def test_each_kind_of_bad_input_is_refused_with_its_reason(tmp_path: Path) -> None:
    cases = _bad(tmp_path)
    assert len({what for what, _, _ in cases}) >= 10
    for what, source, message in cases:
        with pytest.raises(InvalidSignalError, match=message) as caught:
            MODALITY.load(source)
        assert ": " in str(caught.value), f"{what}: the message should say what to do: {caught.value}"


def test_sizes_are_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were the bomb decoded, Image.load would run; it must never be reached.
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the image was decoded before its canvas was checked")

    monkeypatch.setattr(Image.Image, "load", never)
    monkeypatch.setattr("PIL.PngImagePlugin.PngImageFile.load", never, raising=False)
    with pytest.raises(InvalidSignalError, match="decompression bomb"):
        MODALITY.load(_png_header_only(50_000, 50_000))
    # below Pillow's own limit (89 M pixels) but over ours (8192 x 8192): our check, still before decoding
    with pytest.raises(InvalidSignalError, match="9000 x 9000 pixels, over the limit"):
        MODALITY.load(_png_header_only(9000, 9000))
    monkeypatch.setattr(Image, "open", never)
    with pytest.raises(InvalidSignalError, match="over the limit"):
        MODALITY.load(b"\0" * (images.MAX_BYTES + 1))


def test_pillows_own_bomb_limit_is_an_error_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # Below our limit but over Pillow's (lowered here): its warning becomes a refusal, not a log line.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(InvalidSignalError, match="decompression bomb|too large"):
        MODALITY.load(_encode(_picture(), "PNG"))


def test_preprocess_refuses_what_load_would_not_return() -> None:
    with pytest.raises(InvalidSignalError, match=r"\[1, 3, H, W\]"):
        MODALITY.preprocess(torch.zeros(3, 16, 16))
    with pytest.raises(InvalidSignalError, match="NaN"):
        MODALITY.preprocess(torch.full((1, 3, 16, 16), float("nan")))
    # out of [0, 1] (a perturbed image) is clipped: white stays white
    assert torch.equal(MODALITY.preprocess(torch.full((1, 3, 16, 16), 2.0)),
                       MODALITY.preprocess(torch.ones(1, 3, 16, 16)))


def test_the_conformance_kit_sees_the_refusals(tmp_path: Path) -> None:
    check_modality(MODALITY, bad_inputs=[source for _, source, _ in _bad(tmp_path)])
