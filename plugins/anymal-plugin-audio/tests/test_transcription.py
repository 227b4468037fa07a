"""The proof that the mapping is right: the full Whisper tiny.en, built from the converted weights, transcribes
speech that eSpeak NG synthesizes. A wrong mapping (q and v swapped, a missed bias, a transposed tensor)
gives gibberish or nothing; a silent clip is the control that the transcript comes from the audio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import soundfile
import soxr
import torch

from anymal_plugin_audio.whisper_weights import load_state_dict, source_dir, whisper_config

START, NO_TIMESTAMPS, END = 50257, 50362, 50256


@pytest.fixture(scope="module")
def whisper():
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

    model = WhisperForConditionalGeneration(whisper_config()).eval()
    missing, unexpected = model.load_state_dict(load_state_dict(progress=False), strict=False)
    assert missing == ["proj_out.weight"] and not unexpected  # tied to the token embedding
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    # tokenizer.json in the package is the GPT-2 byte-level BPE with Whisper's special tokens added
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(source_dir() / "tokenizer.json"))
    assert tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"]) == [START, NO_TIMESTAMPS]
    return model, WhisperFeatureExtractor(feature_size=80), tokenizer, non_speech_tokens(tokenizer)


def non_speech_tokens(tokenizer) -> torch.Tensor:
    """The tokens OpenAI's decoder suppresses (whisper/tokenizer.py ``non_speech_tokens``): brackets, music
    notes and the like, which tiny.en otherwise emits for robotic speech ("(sad music)")."""
    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
    notes = set("♩♪♫♬♭♮♯")
    ids = {tokenizer.encode(" -", add_special_tokens=False)[0], tokenizer.encode(" '", add_special_tokens=False)[0]}
    for symbol in symbols + sorted(notes):
        for tokens in (tokenizer.encode(symbol, add_special_tokens=False),
                       tokenizer.encode(" " + symbol, add_special_tokens=False)):
            if len(tokens) == 1 or symbol in notes:
                ids.add(tokens[0])
    return torch.tensor(sorted(ids))


def transcribe(whisper, samples: torch.Tensor) -> str:
    """Greedy decoding without timestamps (tiny.en is English-only: no language or task token)."""
    model, extractor, tokenizer, suppressed = whisper
    features = extractor(samples.numpy(), sampling_rate=16_000, return_tensors="pt").input_features
    ids = torch.tensor([[START, NO_TIMESTAMPS]])
    with torch.no_grad():
        encoded = model.model.encoder(features).last_hidden_state
        assert encoded.shape == (1, 1500, 384)
        for _ in range(40):
            logits = model(encoder_outputs=(encoded,), decoder_input_ids=ids).logits[0, -1]
            logits[START:] = -torch.inf  # timestamps and special tokens other than <|endoftext|>
            logits[suppressed] = -torch.inf
            token = int(logits.argmax())
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            if token == END:
                break
    return tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def speak(espeak: str, tmp_path: Path, text: str, *args: str) -> torch.Tensor:
    path = tmp_path / "speech.wav"
    subprocess.run([espeak, *args, "-w", str(path), "--", text], check=True, capture_output=True)
    samples, rate = soundfile.read(path, dtype="float32")
    return torch.from_numpy(soxr.resample(samples, rate, 16_000))  # 22,050 -> 16,000 Hz


def test_whisper_transcribes_a_synthesized_sentence(whisper, espeak, tmp_path):
    text = transcribe(whisper, speak(espeak, tmp_path, "The quick brown fox jumps over the lazy dog.",
                                     "-v", "en-us"))
    print("transcript:", text)
    assert "quick brown fox" in text.lower() and "lazy" in text.lower()


def test_whisper_transcribes_spoken_digits(whisper, espeak, tmp_path):
    text = transcribe(whisper, speak(espeak, tmp_path, "seven, eight, nine", "-v", "en-us", "-s", "170"))
    print("transcript:", text)
    assert "7" in text or "seven" in text.lower()


def test_silence_transcribes_to_none_of_those_words(whisper):
    text = transcribe(whisper, torch.zeros(16_000)).lower()
    print("transcript:", text)
    assert "fox" not in text and "7" not in text and "seven" not in text
