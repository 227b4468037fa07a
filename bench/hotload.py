"""Hot-loading an adapter into a running host, against a cold host start and against peft's LoRA load_adapter,
measured side by side in one run with the real default LLM (SmolLM2-135M-Instruct) and the IMU plugin.

    python bench/hotload.py [--repeats 7] [--cold-repeats 3]

(a) hot: ``host.load_adapter(ref)`` from a warm folder-hub cache into a host that is already serving (resolve +
    content-hash verification + checks + build + strict load + atomic swap), split into its phases;
(b) cold: a new process that imports anymal, loads the LLM, loads the same adapter and encodes a first
    attachment (``host.embed`` of a prompt with the plugin's walking example);
(c) peft: ``PeftModel.load_adapter`` + ``set_adapter`` of a LoRA with about the adapter's parameter count (rank
    picked to match) on another copy of the same LLM, saved first with ``save_pretrained`` (safetensors);
(d) a stage-2 package (the same adapter plus that LoRA in ``lora/``) hot-loaded into the running host: the
    package checks, the LoRA checked against the LLM, loaded beside the others, and the swap; against (c);
(e) the cost of mixing LoRAs in one batch: 8 requests answered together (16 new tokens each) with every row
    on one LoRA, half on each of two LoRAs, every row on the frozen LLM while LoRAs are loaded, and the same
    before any LoRA was loaded (the plain model, no peft layers).

The adapter is an untrained ``ModalityAdapter.from_config`` for ``imu`` (conv+transformer encoder, weights
included, linear projector); timings are independent of training. Medians are printed with the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLD_SCRIPT = """
import time, sys
t0 = time.perf_counter()
from anymal_host import AnymalHost, Attachment
from anymal_plugin_imu.plugin import ADAPTERS_DIR
t_import = time.perf_counter()
host = AnymalHost()
host.llm
t_llm = time.perf_counter()
name = host.load_adapter(sys.argv[1])
t_adapter = time.perf_counter()
example = ADAPTERS_DIR.parent / "examples" / "walking.csv"
host.embed([[{"role": "user", "content": [Attachment(str(example)), "What is the person doing?"]}]])
t_encode = time.perf_counter()
print(f"{t_import - t0:.4f} {t_llm - t_import:.4f} {t_adapter - t_llm:.4f} {t_encode - t_adapter:.4f}")
"""


def median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="hot loads and peft loads to time (default 7)")
    parser.add_argument("--cold-repeats", type=int, default=3, help="cold host starts to time (default 3)")
    args = parser.parse_args()

    import torch

    from adapters_hub import AdapterConfig, EncoderRef, FolderHub, LLMRef, ProjectorSpec, save_adapter_package
    from anymal_host import LLM, AnymalHost, Attachment, ModalityAdapter
    from anymal_host.loading import build_adapter_from_folder
    from anymal_plugin_imu.plugin import ADAPTERS_DIR

    example = ADAPTERS_DIR.parent / "examples" / "walking.csv"
    work = Path(tempfile.mkdtemp(prefix="anymal-bench-hotload-"))

    # ----- a running host with the real default LLM ------------------------------------------------------
    host = AnymalHost(LLM.load(progress=False))
    llm = host.llm
    config = AdapterConfig(
        name="imu-bench", modality="imu", encoder=EncoderRef(name="imu-conv-transformer", config={}),
        projector=ProjectorSpec(type="linear", in_dim=128, out_dim=llm.hidden_size),
        llm=LLMRef(**llm.describe()), num_tokens=64,
    )
    torch.manual_seed(0)
    adapter = ModalityAdapter.from_config(config, host.registry)
    config.token_mode, config.num_tokens = adapter.token_facts()  # as training records them
    n_params = sum(t.numel() for t in adapter.weights_for_saving().values())
    package = work / "imu-bench"
    save_adapter_package(package, config, adapter.weights_for_saving())
    hub = FolderHub(work / "hub")
    hub.push(package, "bench/imu", "benchmark adapter")
    ref = f"file://{work / 'hub'}/bench/imu"
    print(f"device {llm.device}, LLM {llm.name} (hidden {llm.hidden_size}); adapter {n_params:,} parameters "
          f"(imu conv+transformer encoder + linear projector), ref {ref}")

    conversation = [[{"role": "user", "content": [Attachment(str(example)), "What is the person doing?"]}]]
    host.load_adapter(ref, name="imu")  # warm: imports, page cache, first CUDA kernels
    host.embed(conversation)
    model = llm.model

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def timed(action, repeats: int = args.repeats, after=None) -> list[float]:
        """Seconds of each of ``repeats`` calls of ``action(i)``; ``after(i)`` runs untimed after each."""
        times = []
        for i in range(repeats):
            sync()
            start = time.perf_counter()
            action(i)
            sync()
            times.append(time.perf_counter() - start)
            if after is not None:
                after(i)
        return times

    hot = timed(lambda i: host.load_adapter(ref, name="imu"))
    phases = {"resolve": [], "check+build+load": [], "swap": []}
    from adapters_hub import resolve

    for _ in range(args.repeats):  # the same work, phase by phase
        t0 = time.perf_counter()
        folder = resolve(ref)
        t1 = time.perf_counter()
        built = build_adapter_from_folder(folder, host)
        t2 = time.perf_counter()
        host.add_adapter(built, name="imu", source=ref, kind="hub", folder=str(folder))
        sync()
        t3 = time.perf_counter()
        phases["resolve"].append(t1 - t0)
        phases["check+build+load"].append(t2 - t1)
        phases["swap"].append(t3 - t2)
    host.embed(conversation)  # still serving
    assert host.llm.model is model, "the LLM must never be reloaded"

    # ----- cold host starts --------------------------------------------------------------------------------
    cold, cold_parts = [], []
    for _ in range(args.cold_repeats):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, ref], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        cold.append(time.perf_counter() - start)
        cold_parts.append([float(x) for x in out.stdout.split()[-4:]])

    # ----- peft LoRA with the same parameter count on another copy of the LLM -------------------------------
    from peft import LoraConfig, get_peft_model

    base = LLM.load(progress=False).model
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    per_rank = sum(m.in_features + m.out_features for n, m in base.named_modules()
                   if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in targets)
    rank = max(1, round(n_params / per_rank))
    peft_model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets,
                                                 lora_dropout=0.0))
    lora_params = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    lora_dir = work / "lora"
    peft_model.save_pretrained(lora_dir)
    peft_model.load_adapter(str(lora_dir), adapter_name="warm")  # warm
    peft_model.set_adapter("warm")

    def peft_load(i: int) -> None:
        peft_model.load_adapter(str(lora_dir), adapter_name=f"bench{i}")
        peft_model.set_adapter(f"bench{i}")

    def peft_unload(i: int) -> None:
        peft_model.set_adapter("default")
        peft_model.delete_adapter(f"bench{i}")

    peft_times = timed(peft_load, after=peft_unload)

    # ----- (e) before any LoRA: the plain model answering a batch ---------------------------------------------
    def batch_time(adapters: list[str]) -> float:
        prepared = [host.prepare([{"role": "user", "content": [Attachment(str(example), adapter=a),
                                                               "What is the person doing?"]}]) for a in adapters]
        return statistics.median(timed(lambda i: host.answer(prepared, max_new_tokens=16, min_new_tokens=16), 3))

    plain_batch = batch_time(["imu"] * 8)

    # ----- (d) a stage-2 package with that LoRA, hot-loaded into the running host ---------------------------
    stage2 = work / "imu-bench-s2"
    config.name = "imu-bench-s2"
    save_adapter_package(stage2, config, adapter.weights_for_saving(), lora_dir=lora_dir)
    host.load_adapter(str(stage2), name="warm-s2")  # warm
    host.unload_adapter("warm-s2")
    lora_loads = timed(lambda i: host.load_adapter(str(stage2), name="s2", activate=False),
                       after=lambda i: host.unload_adapter("s2"))
    host.load_adapter(str(stage2), name="s2a", activate=False)
    host.load_adapter(str(stage2), name="s2b", activate=False)
    one_lora = batch_time(["s2a"] * 8)
    two_loras = batch_time(["s2a", "s2b"] * 4)
    frozen_rows = batch_time(["imu"] * 8)
    host.unload_adapter("s2a")
    host.unload_adapter("s2b")

    # ----- report ------------------------------------------------------------------------------------------
    hot_ms, cold_ms, peft_ms = median_ms(hot), median_ms(cold), median_ms(peft_times)
    lora_ms = median_ms(lora_loads)
    parts = [statistics.median(p[i] for p in cold_parts) * 1000 for i in range(4)]
    print(f"\nmedians ({args.repeats} hot / {args.cold_repeats} cold / {args.repeats} peft):")
    print(f"  (a) hot-load into the running host     {hot_ms:9.1f} ms   "
          + ", ".join(f"{k} {median_ms(v):.1f} ms" for k, v in phases.items()))
    print(f"  (b) cold host start, same adapter      {cold_ms:9.1f} ms   (in-process: import {parts[0]:.0f} ms, "
          f"LLM {parts[1]:.0f} ms, adapter {parts[2]:.0f} ms, first encode {parts[3]:.0f} ms)")
    print(f"  (c) peft load_adapter+set_adapter      {peft_ms:9.1f} ms   (LoRA r={rank} on {'/'.join(targets)}: "
          f"{lora_params:,} parameters vs adapter {n_params:,})")
    print(f"  (d) stage-2 package hot-load           {lora_ms:9.1f} ms   (the adapter of (a) + the LoRA of (c))")
    print(f"  (e) a batch of 8, 16 new tokens each: plain model {plain_batch * 1000:.0f} ms; with LoRAs loaded: "
          f"every row frozen {frozen_rows * 1000:.0f} ms, one LoRA {one_lora * 1000:.0f} ms, "
          f"two LoRAs mixed {two_loras * 1000:.0f} ms")
    print(f"\nratio hot / cold: {hot_ms / cold_ms:.2%}   (target <= 5%)")
    print(f"ratio hot / peft: {hot_ms / peft_ms:.2f}x")
    print(f"ratio stage-2 hot-load / peft load_adapter: {lora_ms / peft_ms:.2f}x")
    print(f"ratio two LoRAs mixed / one LoRA: {two_loras / one_lora:.2f}x; frozen rows with LoRAs loaded / plain "
          f"model: {frozen_rows / plain_batch:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
