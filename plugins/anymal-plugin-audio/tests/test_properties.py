"""Whatever bytes or arrays the loader is sent, it returns a valid clip or raises InvalidSignalError."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anymal_host import InvalidSignalError

from anymal_plugin_audio.audio_io import MAX_SAMPLES, MIN_SAMPLES, read_audio

_WAV = io.BytesIO()
soundfile.write(_WAV, np.sin(np.arange(1600) / 5).astype(np.float32) * 0.3, 16_000, format="WAV")
VALID_WAV = _WAV.getvalue()

# Real headers with mutated tails, mutated headers, random bytes, and arrays of any dtype, shape and rate.
mutated = st.builds(lambda cut, junk, at: (VALID_WAV[:at] + junk + VALID_WAV[at + len(junk):])[:cut],
                    st.integers(0, len(VALID_WAV)), st.binary(max_size=16), st.integers(0, 64))
magic = st.sampled_from([b"RIFF\x00\x00\x00\x00WAVE", b"fLaC", b"OggS", b"ID3\x03", b"\xff\xfb", b"\x00\x00\x00\x18ftypM4A "])
headers = st.builds(lambda head, tail: head + tail, magic, st.binary(max_size=300))
sample_arrays = st.tuples(
    arrays(st.sampled_from([np.float32, np.float64, np.int16, np.int32, np.uint8, np.bool_]),
           st.one_of(st.tuples(st.integers(0, 4000)), st.tuples(st.integers(0, 2000), st.integers(0, 10)))),
    st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True), st.sampled_from([8000, 16_000, 44_100])),
)
sources = st.one_of(mutated, headers, st.binary(max_size=400), sample_arrays)


@pytest.mark.timeout(600)
@settings(max_examples=1000, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sources)
def test_the_loader_returns_a_valid_clip_or_refuses_clearly(source):
    try:
        signal = torch.from_numpy(read_audio(source)).reshape(-1, 1)
    except InvalidSignalError as error:
        assert str(error)
        return
    assert signal.dtype == torch.float32 and signal.dim() == 2 and signal.shape[1] == 1
    assert MIN_SAMPLES <= signal.shape[0] <= MAX_SAMPLES and bool(torch.isfinite(signal).all())
