"""Decoding images into ``[1, 3, H, W]`` float32 tensors in ``[0, 1]``, following the host's loader rules.

Whatever it is sent, :func:`load_image` returns a valid image or raises
:class:`anymal_host.InvalidSignalError` saying what is wrong and how to fix it (:mod:`anymal_host.sources`):

- a path is ``stat``-ed before it is opened (folders, pipes and devices are refused by what they are), and a
  file or a bytes source over :data:`MAX_BYTES` is refused before one byte of it is read;
- Pillow only reads the header before :data:`MAX_PIXELS` is checked, so a small file that declares a huge
  canvas (a decompression bomb) is refused without allocating it; Pillow's own bomb check is an error too;
- only PNG, JPEG, WebP, GIF, BMP and TIFF are opened (Pillow would otherwise try every format it knows);
- truncated files fail at decoding with a clear error (Pillow's ``LOAD_TRUNCATED_IMAGES`` stays off, so a
  half-received upload is never silently padded with grey);
- EXIF orientation is applied, the first frame of an animation is used, and grayscale, palette, alpha,
  CMYK and 16-bit images become 8-bit-range RGB (alpha is composited on white, as a viewer shows it).

The leading axis of the result is the frame axis (``T = 1``): the host pads along it, and a video plugin can
stack frames there with the same encoder.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anymal_host import InvalidSignalError
from anymal_host.sources import check_finite_range, check_source_size, format_bytes, open_source_file

if TYPE_CHECKING:  # torch loads when a function needs it, so importing this module does not
    import torch

__all__ = ["MAX_BYTES", "MAX_PIXELS", "MIN_SIDE", "MAX_ASPECT", "FORMATS", "MEDIA_TYPES", "load_image", "decode_image_bytes",
           "parse_data_url", "image_from_array"]

#: Largest encoded image accepted (file, bytes or the decoded payload of a ``data:`` URL). A 24-megapixel
#: JPEG from a phone is 5-12 MB; 32 MiB leaves room for PNG screenshots and 16-bit TIFFs.
MAX_BYTES = 32 << 20
#: Largest canvas accepted, checked from the header before decoding: 8192 x 8192. The encoder sees 224 x 224,
#: so nothing is gained from more, and an RGB canvas of this size already takes 200 MB decoded.
MAX_PIXELS = 8192 * 8192
#: The smallest side accepted. scikit-learn's digits are 8 x 8, the smallest real images the plugin trains on;
#: anything smaller carries no picture an encoder can read.
MIN_SIDE = 8
#: The most elongated image accepted (long side / short side). The encoder sees the image resized to fit 224 x
#: 224, so at 32:1 the short side is 7 pixels; beyond it nothing is left to see (a resize would yield 0 pixels).
MAX_ASPECT = 32
#: Pillow format names the loader opens, and their file extensions / media types.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff")

# The base64 text of a data: URL is 4/3 of its payload (plus a header); refuse longer text before decoding.
_MAX_DATA_URL_CHARS = MAX_BYTES * 4 // 3 + 1024
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),", re.IGNORECASE)
# Pillow modes handled, and how: 8-bit modes convert with Pillow; 16/32-bit integer modes scale by 65535.
_EIGHT_BIT = {"1", "L", "P", "RGB", "RGBA", "LA", "PA", "La", "RGBa", "RGBX", "CMYK", "YCbCr"}
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def load_image(source: Any) -> torch.Tensor:
    """A path, bytes, a ``data:`` URL, a PIL image, a numpy array or a torch tensor -> ``[1, 3, H, W]`` float32.

    :raises InvalidSignalError: for anything that is not a usable image, naming the problem and the fix.
    """
    if isinstance(source, str) and source[:5].lower() == "data:":
        return decode_image_bytes(parse_data_url(source), "image data: URL")
    if isinstance(source, (str, Path)):
        what = f"image file {str(source)!r}"
        with open_source_file(source, max_bytes=MAX_BYTES, what="image file", fix=_SMALLER) as file:
            data = file.read(MAX_BYTES + 1)
        return decode_image_bytes(data, what)
    if isinstance(source, (bytes, bytearray, memoryview)):
        check_source_size(len(source), max_bytes=MAX_BYTES, what="image bytes", fix=_SMALLER)
        return decode_image_bytes(bytes(source), "image bytes")
    from PIL import Image

    if isinstance(source, Image.Image):
        _check_canvas(source.size, "PIL image")
        return _pil_to_tensor(source, "PIL image")
    return image_from_array(source)


_SMALLER = "send a smaller image (re-save it as JPEG, or scale it down: the encoder sees 224 x 224 pixels)"


def parse_data_url(url: str) -> bytes:
    """The payload of ``data:image/png;base64,...`` (as OpenAI's ``image_url`` content parts carry images)."""
    if len(url) > _MAX_DATA_URL_CHARS:
        raise InvalidSignalError(f"image data: URL is {format_bytes(len(url))} of text, over the limit of "
                                 f"{format_bytes(_MAX_DATA_URL_CHARS)} (a {format_bytes(MAX_BYTES)} image): {_SMALLER}")
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidSignalError("image data: URL has no ',' after its media type: write it as "
                                 "data:image/png;base64,<base64 of the file>")
    media_type = match.group("type").strip().lower()
    if media_type and not media_type.startswith("image/"):
        raise InvalidSignalError(f"data: URL carries {media_type!r}, not an image: send an image "
                                 f"({', '.join(MEDIA_TYPES)})")
    params = [p.strip().lower() for p in match.group("params").split(";") if p.strip()]
    if "base64" not in params:
        raise InvalidSignalError("image data: URL is not base64-encoded: write it as "
                                 "data:image/png;base64,<base64 of the file>")
    payload = url[match.end():]
    try:
        # validate=True: a stray character means a mangled URL, not something to skip silently
        data = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignalError(f"image data: URL holds invalid base64 ({exc}): encode the file's bytes with "
                                 "standard base64") from None
    if not data:
        raise InvalidSignalError("image data: URL is empty: put the base64 of the image file after the ','")
    return data


def decode_image_bytes(data: bytes, what: str) -> torch.Tensor:
    """Decode the bytes of an image file, checking size, format and canvas before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    check_source_size(len(data), max_bytes=MAX_BYTES, what=what, fix=_SMALLER)  # a file that grew while read
    if not data:
        raise InvalidSignalError(f"{what} is empty (0 bytes): send the whole image file")
    with warnings.catch_warnings():
        # Damaged files make Pillow warn ("Corrupt EXIF data"...) for what it can still read: not the user's
        # log's business. But it also warns (DecompressionBombWarning) between its own pixel limit and twice
        # it: that one is an error here (the filter added last is matched first).
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))  # reads the header only
        except UnidentifiedImageError:
            raise InvalidSignalError(f"{what} is not an image this plugin reads: send a "
                                     f"{', '.join(FORMATS)} file") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow's check runs inside open, from the header, before ours can: its message has the size
            raise InvalidSignalError(f"{what} declares a canvas too large to decode safely, a decompression bomb "
                                     f"(Pillow: {str(exc).split(',')[0]}): {_SMALLER}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InvalidSignalError(f"{what} has a broken header ({exc}): re-save the image") from None
        with image:
            _check_canvas(image.size, what)
            try:
                image.seek(0)  # the first frame of an animated GIF / WebP / multi-page TIFF
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise InvalidSignalError(f"{what} declares a canvas too large to decode safely: {_SMALLER}") from None
            except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
                reason = "truncated" if "truncated" in str(exc).lower() else f"corrupt ({exc})"
                raise InvalidSignalError(f"{what} is {reason}: the file is incomplete or damaged; send the whole "
                                         "file again, or re-save it") from None
            return _pil_to_tensor(image, what)


def _check_canvas(size: tuple[int, int], what: str) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise InvalidSignalError(f"{what} is {width} x {height} pixels, over the limit of {MAX_PIXELS:,} pixels "
                                 f"(8192 x 8192): {_SMALLER}")
    if min(width, height) < MIN_SIDE:
        raise InvalidSignalError(f"{what} is {width} x {height} pixels, smaller than {MIN_SIDE} pixels on a side: "
                                 "send a larger image")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InvalidSignalError(f"{what} is {width} x {height} pixels, more elongated than {MAX_ASPECT}:1: crop it "
                                 "to the part that matters")


def _pil_to_tensor(image: Any, what: str) -> torch.Tensor:
    """A decoded PIL image -> ``[1, 3, H, W]`` float32 in [0, 1], upright, alpha composited on white."""
    from PIL import Image, ImageOps

    try:
        image = ImageOps.exif_transpose(image)  # phones store portraits sideways with an orientation tag
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):
        pass  # a broken EXIF block: keep the pixels as stored rather than refuse a readable image
    mode = image.mode
    if mode in _SIXTEEN_BIT:
        # 16-bit grayscale (PNG, TIFF): Pillow's convert("L") would clip, not scale, so scale here.
        gray = np.asarray(image, dtype=np.float64) / 65535.0
        return _finish(np.repeat(np.clip(gray, 0.0, 1.0)[:, :, None], 3, axis=2), what)
    if mode not in _EIGHT_BIT:
        raise InvalidSignalError(f"{what} has the pixel mode {mode!r}, which has no fixed brightness range "
                                 "(floating-point or unusual colour space): save it as 8- or 16-bit RGB or grayscale")
    if "A" in mode or "a" in mode or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return _finish(rgb, what)


def _finish(rgb: np.ndarray, what: str) -> torch.Tensor:
    import torch

    check_finite_range(rgb, what=what, low=0.0, high=1.0, index_names=("row", "column", "channel"))
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)).unsqueeze(0)


def image_from_array(source: Any) -> torch.Tensor:
    """An array-like image -> ``[1, 3, H, W]`` float32 in [0, 1].

    Accepted layouts: ``[H, W]`` (grayscale), ``[H, W, C]`` (numpy's and Pillow's order) or ``[C, H, W]``
    (torch's order), C being 1, 3 or 4 (alpha is composited on white), and ``[1, C, H, W]`` (what
    :func:`load_image` returns). Values: uint8 (0-255), uint16 (0-65535), bool, or floats in [0, 1].
    """
    import torch

    if source is None:
        raise InvalidSignalError("no image was given (None): pass a path, bytes, a data: URL or an array")
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu()
        source = source.float().numpy() if source.dtype == torch.bfloat16 else source.numpy()
    try:
        array = np.asarray(source)
    except (TypeError, ValueError) as exc:
        raise InvalidSignalError(f"cannot read an image from {type(source).__name__} ({exc}): pass a path, bytes, "
                                 "a data: URL or an array [H, W, 3]") from None
    if array.dtype.kind not in "biuf":
        raise InvalidSignalError(f"an image holds numbers, got an array of {array.dtype}: pass an array of uint8, "
                                 "uint16 or floats in [0, 1]")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InvalidSignalError(f"an image array has shape [H, W], [H, W, C] or [C, H, W], got {list(array.shape)}: "
                                 "pass one image (for several, send several attachments)")
    if array.shape[2] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # [C, H, W] -> [H, W, C]
    if array.shape[2] not in (1, 3, 4):
        raise InvalidSignalError(f"an image array has 1, 3 or 4 channels, got shape {list(array.shape)}: pass "
                                 "[H, W, 3] RGB (or [3, H, W])")
    _check_canvas((int(array.shape[1]), int(array.shape[0])), "image array")
    if array.dtype.kind == "f":
        values = array.astype(np.float64)
        check_finite_range(values, what="image array", low=0.0, high=1.0, index_names=("row", "column", "channel"),
                           fix="float images hold values in [0, 1]: divide 8-bit values by 255")
    elif array.dtype == np.uint8 or array.dtype.kind == "b":
        values = array.astype(np.float64) / (1.0 if array.dtype.kind == "b" else 255.0)
    elif array.dtype == np.uint16:
        values = array.astype(np.float64) / 65535.0
    else:
        raise InvalidSignalError(f"an image array of {array.dtype} has no fixed brightness range: convert it to "
                                 "uint8 (0-255), uint16 (0-65535) or floats in [0, 1]")
    if values.shape[2] == 4:
        alpha = values[:, :, 3:]
        values = values[:, :, :3] * alpha + (1.0 - alpha)  # composited on white, as Pillow paths are
    elif values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return _finish(values, "image array")
