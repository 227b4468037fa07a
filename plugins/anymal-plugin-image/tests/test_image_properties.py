"""Property-based test of the image loader: whatever it is sent, ``load`` + ``preprocess`` either return the
encoder's input or raise the documented InvalidSignalError - never another exception, never a hang.

1,000 generated examples, deterministically (``derandomize=True``, no example database), so CI sees the same
inputs on every run. Inputs are valid images of every format and mode, the same with bytes cut, overwritten or
appended, header fields rewritten, random bytes, data: URLs and arrays of any shape and dtype. ``deadline`` is
a per-example hang detector, far above a typical example; ``pytest.mark.timeout`` stops a test that hangs.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from anymal_host import InvalidSignalError
from anymal_plugin_image import ImageModality

MODALITY = ImageModality()
PROPERTY = settings(max_examples=1000, deadline=5000, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "ICO", "PPM")  # the last two must be refused
_MODES = ("RGB", "L", "P", "RGBA", "LA", "1", "I;16", "CMYK", "F", "I")


@st.composite
def encoded_images(draw: st.DrawFn) -> bytes:
    """A valid image file of any format and mode, possibly damaged."""
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    mode = draw(st.sampled_from(_MODES))
    fmt = draw(st.sampled_from(_FORMATS))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    try:
        image = image.convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        data = buffer.getvalue()
    except (OSError, ValueError, KeyError):
        data = pixels.tobytes()  # a format that cannot hold this mode: raw pixels, which must be refused
    damage = draw(st.sampled_from(["none", "none", "cut", "overwrite", "append", "header"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "overwrite" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at + 16:]
    elif damage == "append":
        data += draw(st.binary(max_size=64))
    elif damage == "header" and len(data) > 24:
        at = draw(st.integers(8, 24))  # width / height fields of PNG's IHDR, GIF's and BMP's headers
        data = data[:at] + draw(st.binary(min_size=4, max_size=4)) + data[at + 4:]
    return data


_arrays = hnp.arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_,
                                            np.complex64]),
                     shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=12),
                     elements=None)
_sources = st.one_of(
    encoded_images(), encoded_images(), encoded_images(),
    st.binary(max_size=256),
    encoded_images().map(lambda b: "data:image/png;base64," + base64.b64encode(b).decode()),
    st.text(max_size=40).map(lambda t: "data:" + t),
    _arrays,
    _arrays.map(lambda a: torch.from_numpy(a) if a.dtype != np.complex64 else a),
)


@pytest.mark.timeout(900)
@PROPERTY
@given(source=_sources)
def test_load_either_gives_the_encoder_input_or_refuses_clearly(source: object) -> None:
    try:
        out = MODALITY.preprocess(MODALITY.load(source))
    except InvalidSignalError as exc:
        message = str(exc)
        assert ": " in message and len(message) > 20, message  # what is wrong, then how to fix it
        event("refused: " + re.sub(r"[0-9]+", "N", message.split(":")[0])[:50])
        return
    event("accepted")
    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())
