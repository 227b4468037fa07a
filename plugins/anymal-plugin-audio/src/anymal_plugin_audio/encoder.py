"""``WhisperAudioEncoder``: Whisper tiny.en's encoder (transformers' ``WhisperEncoder``), real weights.

The waveform goes through transformers' ``WhisperFeatureExtractor`` (80 log-mel bins, 10 ms hop, padded to
30 s as Whisper was trained), then through the 4-layer encoder: 1,500 frames of 384 features per 30 s, one
frame per 20 ms. Only the frames that cover the real audio are marked real; the rest are exactly zero.

Imported only when an adapter is built (``AudioModality.build_encoder``), so registering the plugin stays cheap.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import torch

from anymal_host import Encoder

from .audio_io import SAMPLE_RATE

__all__ = ["WhisperAudioEncoder", "ENCODER_NAME", "FRAMES", "SAMPLES_PER_FRAME", "build_encoder", "frames_for"]

#: The name adapter packages record in ``encoder.name``; ``build_encoder`` refuses any other.
ENCODER_NAME = "whisper-tiny.en"
#: Encoder frames per 30 s window, and the samples one frame covers (10 ms hop x stride-2 convolution):
#: 1,500 x 320 = 480,000 samples = 30 s at 16 kHz.
FRAMES = 1500
SAMPLES_PER_FRAME = 320


def frames_for(num_samples: torch.Tensor) -> torch.Tensor:
    """Encoder frames that hold real audio for clips of ``num_samples`` (16 kHz): a partly covered frame
    counts, so a 30 ms clip has 2 frames and a 30 s clip all 1,500."""
    return torch.clamp((num_samples + SAMPLES_PER_FRAME - 1) // SAMPLES_PER_FRAME, 1, FRAMES)


class WhisperAudioEncoder(Encoder):
    """``[B, N, 1]`` 16 kHz waveforms (``N <= 480,000``) -> ``([B, 1500, 384] features, [B, 1500] mask)``.

    ``frozen`` (the default) runs Whisper without gradients and keeps it in eval mode even while the adapter
    trains: the pretrained encoder is the point of this plugin, and with a few hundred synthetic clips
    fine-tuning 8 M parameters would only overfit. ``frozen=False`` (``--encoder-option frozen=false``) lets
    it train with the projector.
    """

    #: ``build_encoder`` loads Whisper's real weights, so a package may leave them out.
    pretrained_weights = True

    def __init__(self, frozen: bool = True, progress: bool = True) -> None:
        super().__init__()
        from transformers import WhisperFeatureExtractor
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        from .whisper_weights import WHISPER_DIMS, load_state_dict, whisper_config

        self.feature_dim = WHISPER_DIMS["d_model"]
        self.frozen = frozen
        self.whisper = WhisperEncoder(whisper_config())
        # The host first builds adapters on the meta device to compare tensor names and shapes; there is no
        # memory to load weights into, and nothing needs them.
        if self.whisper.conv1.weight.device.type != "meta":
            prefix = "model.encoder."
            state = {k[len(prefix):]: v for k, v in load_state_dict(prefix, progress=progress).items()}
            self.whisper.load_state_dict(state, strict=True)
        self.whisper.requires_grad_(not frozen)
        self.mel = WhisperFeatureExtractor(feature_size=WHISPER_DIMS["num_mel_bins"], sampling_rate=SAMPLE_RATE)

    def train(self, mode: bool = True) -> "WhisperAudioEncoder":
        super().train(mode)
        if self.frozen:
            self.whisper.eval()  # a frozen encoder stays deterministic (no dropout) while the projector trains
        return self

    def forward(self, signals: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``signals [B, N, 1]`` and ``mask [B, N]`` (True on real samples, padding at the end)."""
        lengths = mask.sum(dim=1)
        # Each clip's real samples alone: the extractor pads each with zeros to 30 s, exactly as it does for a
        # single clip, so an item's features do not depend on the batch it is in.
        waves = [signals[i, : int(lengths[i]), 0].detach().cpu().float().numpy() for i in range(signals.shape[0])]
        mel = self.mel(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        mel = mel.to(device=signals.device, dtype=self.whisper.conv1.weight.dtype)
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            hidden = self.whisper(mel).last_hidden_state  # [B, 1500, 384]
        steps = torch.arange(FRAMES, device=signals.device)
        feature_mask = steps[None, :] < frames_for(lengths.to(signals.device))[:, None]
        # Exactly zero past the real audio (not Whisper's encoding of the silence padding), as the contract asks.
        features = torch.where(feature_mask[..., None], hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device))
        return features, feature_mask


def build_encoder(config: Mapping[str, Any]) -> WhisperAudioEncoder:
    """Build the encoder an adapter's ``encoder`` section describes: ``{"name": "whisper-tiny.en", "frozen": true}``."""
    name = config.get("name")
    if name != ENCODER_NAME:
        raise ValueError(f"unknown audio encoder {name!r}: this plugin provides {ENCODER_NAME!r} "
                         f"(pass --encoder-option name={ENCODER_NAME})")
    unknown = sorted(set(config) - {"name", "frozen"})
    if unknown:
        raise ValueError(f"encoder {ENCODER_NAME!r} has no option(s) {', '.join(unknown)}: it takes frozen (true "
                         "or false)")
    frozen = config.get("frozen", True)
    if not isinstance(frozen, bool):
        raise ValueError(f"encoder {ENCODER_NAME!r}: frozen={frozen!r}: give true or false")
    return WhisperAudioEncoder(frozen=frozen)

