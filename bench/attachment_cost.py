"""What one attachment costs a request, against the LLM's prefill of the same request: the shared measurement
behind ``bench/image_encode.py``, ``bench/audio_encode.py`` and ``bench/video_encode.py``.

For one source file it times, each the median of ``repeats`` runs after one warm-up, in one process:

- load: the modality's ``load`` from the file's path (read + decode, and resample for audio);
- preprocess: the modality's ``preprocess``;
- encoder: the plugin's default encoder (frozen), on the collated signal;
- projector: a Perceiver resampler of ``num_tokens`` tokens (untrained: its cost does not depend on its weights);
- prefill: the real default LLM's forward over the assembled request (chat template, question and the
  attachment's tokens), which is what the first generated token waits for.

The ratio printed last is (load + preprocess + encoder + projector) / prefill: both measured in the same run,
so a busy machine slows both.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["median_ms", "measure"]


def median_ms(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``function()`` in ms over ``repeats`` runs after one warm-up, and its last result."""
    result = function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), result


def measure(modality_name: str, source: Path, question: str, repeats: int, num_tokens: int) -> float:
    """Time the attachment path of ``source`` and the prefill; print the table; return the ratio."""
    import torch

    from adapters_hub import AdapterConfig, EncoderRef, LLMRef, ProjectorSpec
    from anymal_host import LLM, AnymalHost, Attachment, ModalityAdapter

    host = AnymalHost(LLM.load(progress=False))
    llm = host.llm
    modality = host.registry.modality(modality_name)
    encoder_options = {k: v for k, v in modality.default_encoder.items() if k != "name"}
    encoder = modality.build_encoder(dict(modality.default_encoder))
    config = AdapterConfig(
        name=f"{modality_name}-bench", modality=modality_name,
        encoder=EncoderRef(name=modality.default_encoder["name"], config=encoder_options),
        projector=ProjectorSpec(type="perceiver", in_dim=encoder.feature_dim, out_dim=llm.hidden_size),
        llm=LLMRef(**llm.describe()), num_tokens=num_tokens,
    )
    del encoder
    torch.manual_seed(0)
    adapter = ModalityAdapter.from_config(config, host.registry).eval()
    host.add_adapter(adapter)

    with torch.inference_mode():
        t_load, loaded = median_ms(lambda: modality.load(source), repeats)
        t_pre, pre = median_ms(lambda: modality.preprocess(loaded), repeats)
        signals, mask = modality.collate([pre])
        t_enc, (features, feature_mask) = median_ms(lambda: adapter.encoder(signals, mask), repeats)
        t_proj, (tokens, _) = median_ms(lambda: adapter.projector(features, feature_mask), repeats)
        batch = host.embed([[{"role": "user", "content": [Attachment(str(source)), question]}]])
        t_prefill, _ = median_ms(lambda: llm.forward(batch.inputs_embeds, batch.attention_mask), repeats)

    total = t_load + t_pre + t_enc + t_proj
    print(f"{modality_name} {source.name}: signal {tuple(loaded.shape)} -> features {tuple(features.shape)} "
          f"({int(feature_mask.sum())} real) -> tokens {tuple(tokens.shape)}; request {batch.inputs_embeds.shape[1]} "
          f"positions; torch threads {torch.get_num_threads()}; medians of {repeats}")
    for name, value in (("load", t_load), ("preprocess", t_pre), ("encoder", t_enc), ("projector", t_proj)):
        print(f"  {name:<11} {value:8.1f} ms")
    print(f"  {modality_name + ' total':<11} {total:8.1f} ms")
    print(f"  {'LLM prefill':<11} {t_prefill:8.1f} ms")
    ratio = total / t_prefill
    print(f"{modality_name} path / LLM prefill = {ratio:.2f}")
    return ratio
