"""What 8-bit and 4-bit (bitsandbytes) save against float32, measured in one run with the real default LLM.

    python bench/quantize.py [--steps 6] [--eval-items 120]

For each of fp32, 8bit and 4bit, every figure in a fresh process (so one mode's memory never counts for
another), memory counted above the floor of a process that has only imported torch, transformers and
bitsandbytes (Linux's peak resident set, ``VmHWM``, reset after the imports):

- **answer**: peak memory of loading the LLM and answering one prompt; wall time of both.
- **stage 1** / **stage 2**: peak memory of a short training run (quantized runs recompute the LLM's
  activations in the backward pass, as QLoRA does; fp32 is measured without and with that, ``fp32-ckpt``) on ``imu:hapt`` (the LLM frozen; stage 2 adds
  a LoRA, started from the bundled adapter with ``--init-from``), the median step time and the validation loss
  after the same number of steps.
- **accuracy**: the bundled IMU adapter's accuracy from generated text on a class-balanced subset of the held-out
  people, with the LLM in that precision.

The quantized copies of the LLM (see ``anymal_host/quantized_cache.py``) are written before the measurements:
the first quantized load of a checkpoint peaks like a float32 load, once. Ratios against fp32 are printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, statistics, sys, time
mode, job, steps, items = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import torch, transformers
try:
    import bitsandbytes
except ImportError:
    pass

from anymal_host.testing._memory import peak_mib, reset_peak, resident_mib

floor = resident_mib()
reset_peak()  # the peak counts from here
from anymal_host import AnymalHost
from anymal_host.llm import LLMOptions
quantization = None if mode.startswith("fp32") else mode
checkpointing = True if mode == "fp32-ckpt" else None  # None: on for quantized runs, off for fp32
start = time.perf_counter()
host = AnymalHost(llm_options=LLMOptions(quantization=quantization))
out = {}
if job == "answer":
    host.llm
    out["load_peak"] = peak_mib() - floor
    out["answer"] = host.chat("What is the capital of France?", max_new_tokens=16)
    out["seconds"] = time.perf_counter() - start
elif job.startswith("stage"):
    import tempfile
    from anymal_host.training import TrainConfig, train
    stage = int(job[-1])
    bundled = str(host.registry.bundled_adapters["imu-linear"])
    with tempfile.TemporaryDirectory() as tmp:
        result = train(TrainConfig(dataset="imu:hapt", output_dir=tmp, stage=stage, init_from=bundled,
                                   projector="linear", steps=steps, batch_size=8, lr=1e-4, warmup_steps=0,
                                   eval_every=steps, val_items=32, val_generate=0, max_train_items=512,
                                   quantization=quantization, gradient_checkpointing=checkpointing,
                                   keep_checkpoints=1),
                       host, progress=False)
    seconds = [h["seconds"] for h in result.history if "seconds" in h][1:]  # the first step warms up
    out["step_seconds"] = statistics.median(seconds) if seconds else None
    out["val_loss"] = result.best_val_loss
elif job == "accuracy":
    from anymal_host.evaluation import evaluate
    report = evaluate(host, host.registry.dataset("imu:hapt"), split="test", limit=items, baseline=False,
                      progress=False, caption_scores=False)
    out["accuracy"] = report.accuracy
out["peak"] = peak_mib() - floor
print("RESULT " + json.dumps(out))
"""
MODES = ("fp32", "fp32-ckpt", "8bit", "4bit")
# fp32-ckpt: float32 training with gradient checkpointing, which the quantized runs use (QLoRA's recipe): the
# fair baseline for their training memory. Loading, answering and accuracy are fp32's.
TRAINING_ONLY = {"fp32-ckpt"}


def run(mode: str, job: str, steps: int, items: int) -> dict:
    done = subprocess.run([sys.executable, "-c", WORKER, mode, job, str(steps), str(items)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{mode} {job} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="training steps per stage and precision (default 6)")
    parser.add_argument("--eval-items", type=int, default=120,
                        help="held-out IMU windows answered per precision (class-balanced; default 120)")
    args = parser.parse_args()

    for mode in ("8bit", "4bit"):
        run(mode, "answer", args.steps, args.eval_items)  # writes the quantized copy (its peak is not counted)
    results = {mode: {} for mode in MODES}
    for job in ("answer", "stage1", "stage2", "accuracy"):
        for mode in MODES:
            if mode in TRAINING_ONLY and not job.startswith("stage"):
                results[mode][job] = results["fp32"][job]
                continue
            results[mode][job] = run(mode, job, args.steps, args.eval_items)
            print(f"{mode:9s} {job:8s} {json.dumps(results[mode][job])}", flush=True)

    def mib(value: float) -> str:
        return f"{value:7.0f} MiB"

    print("\nmemory above the import floor (peak), time, and quality, per precision:")
    print(f"{'':22s}" + "".join(f"{m:>14s}" for m in MODES))
    rows = [
        ("load + answer", lambda r: mib(r["answer"]["peak"])),
        ("  of which loading", lambda r: mib(r["answer"]["load_peak"])),
        ("  wall time", lambda r: f"{r['answer']['seconds']:9.1f} s"),
        ("stage 1 training", lambda r: mib(r["stage1"]["peak"])),
        ("  step time", lambda r: f"{r['stage1']['step_seconds']:9.2f} s"),
        ("  validation loss", lambda r: f"{r['stage1']['val_loss']:9.4f}"),
        ("stage 2 training", lambda r: mib(r["stage2"]["peak"])),
        ("  step time", lambda r: f"{r['stage2']['step_seconds']:9.2f} s"),
        ("  validation loss", lambda r: f"{r['stage2']['val_loss']:9.4f}"),
        ("IMU accuracy", lambda r: f"{r['accuracy']['accuracy']:9.1%}"),
    ]
    for label, cell in rows:
        print(f"{label:22s}" + "".join(f"{cell(results[m]):>14s}" for m in MODES))
    base = results["fp32"]
    print("\nratios against fp32 (target for 4bit: memory <= 0.50x, accuracy within 2 points):")
    for mode in ("8bit", "4bit"):
        r = results[mode]
        print(f"  {mode}: answering {r['answer']['peak'] / base['answer']['peak']:.2f}x, stage 1 "
              f"{r['stage1']['peak'] / base['stage1']['peak']:.2f}x, stage 2 {r['stage2']['peak'] / base['stage2']['peak']:.2f}x "
              f"memory; step time {r['stage1']['step_seconds'] / base['stage1']['step_seconds']:.2f}x (stage 1), "
              f"{r['stage2']['step_seconds'] / base['stage2']['step_seconds']:.2f}x (stage 2); accuracy "
              f"{100 * (r['accuracy']['accuracy'] - base['accuracy']['accuracy']):+.1f} points")
        ckpt = results["fp32-ckpt"]
        print(f"        against fp32 trained with the same gradient checkpointing: stage 1 "
              f"{r['stage1']['peak'] / ckpt['stage1']['peak']:.2f}x, stage 2 {r['stage2']['peak'] / ckpt['stage2']['peak']:.2f}x")


if __name__ == "__main__":
    main()
