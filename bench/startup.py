"""Start-up of the ``anymal`` command against what any Python program pays to run the same LLM, measured side
by side in one run (each command a fresh interpreter, the rounds interleaved) and printed as ratios.

    python bench/startup.py [--rounds 5] [--conversion]

Timed, each as its own process:

- ``import torch, transformers``: the floor the issue names (transformers' top level is lazy, so this is
  mostly torch);
- the LLM's imports: ``torch`` plus the transformers classes the default LLM needs (``AutoTokenizer``,
  ``AutoModelForCausalLM`` and its Llama config and model). With transformers 5 the Llama config pulls
  ``image_utils`` and through it torchvision and ``torch._dynamo`` when torchvision is installed (as the image
  plugin needs): a cost every program that loads this model pays;
- plain transformers answering the prompt from the same converted cache (tokenizer, model, chat template,
  greedy ``generate``): the job ``anymal chat`` does, without anymal;
- ``anymal --help``, ``anymal plugins`` and a cached ``anymal chat --no-log`` with every installed plugin.

The ratios printed last are ``anymal chat`` over each floor. ``--conversion`` also times the first run on an
empty ``$ANYMAL_HOME`` (the GGUF -> safetensors conversion) against a cached one.
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

PROMPT = "What is the capital of France?"
TOKENS = 12

PLAIN = f"""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from anymal_host.default_llm import default_llm_path
path = default_llm_path(progress=False)
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
ids = tokenizer.apply_chat_template([{{"role": "user", "content": {PROMPT!r}}}], add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens={TOKENS}, do_sample=False)
print(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
"""

COMMANDS = {
    "import torch, transformers": [sys.executable, "-c", "import torch, transformers"],
    "the LLM's imports": [sys.executable, "-c", "import torch\nfrom transformers import AutoModelForCausalLM, "
                          "AutoTokenizer, LlamaConfig, LlamaForCausalLM"],
    "plain transformers answering": [sys.executable, "-c", PLAIN],
    "anymal --help": [sys.executable, "-m", "anymal_host.cli", "--help"],
    "anymal plugins": [sys.executable, "-m", "anymal_host.cli", "plugins"],
    "anymal chat (cached)": [sys.executable, "-m", "anymal_host.cli", "chat", "--no-log", "--max-new-tokens",
                             str(TOKENS), PROMPT],
}


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stderr}")
    return seconds, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every command, interleaved (default 5)")
    parser.add_argument("--conversion", action="store_true", help="also time a first run on an empty cache")
    args = parser.parse_args()
    env = dict(os.environ)
    timed(COMMANDS["anymal chat (cached)"], env)  # fills the cache (and the OS file cache) before timing
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for round_ in range(args.rounds):
        for name, command in COMMANDS.items():
            seconds, last = timed(command, env)
            times[name].append(seconds)
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nmedian of {args.rounds} (python {sys.version.split()[0]}, {os.cpu_count()} cores):")
    for name, value in medians.items():
        print(f"  {name:32s} {value:6.2f} s")
    chat = medians["anymal chat (cached)"]
    print(f"\nanymal chat / import torch, transformers:  {chat / medians['import torch, transformers']:.2f}x")
    llm_imports = medians["the LLM's imports"]
    print(f"anymal chat / the LLM's imports:          {chat / llm_imports:.2f}x")
    print(f"anymal chat / plain transformers answering: {chat / medians['plain transformers answering']:.2f}x")
    if args.conversion:
        first, cached = [], []
        for _ in range(max(1, args.rounds // 2)):
            home = tempfile.mkdtemp(prefix="anymal-bench-")
            try:
                local = {**env, "ANYMAL_HOME": home}
                first.append(timed(COMMANDS["anymal chat (cached)"], local)[0])
                cached.append(timed(COMMANDS["anymal chat (cached)"], local)[0])
            finally:
                shutil.rmtree(home, ignore_errors=True)
        print(f"first run (conversion) / cached run: {statistics.median(first) / statistics.median(cached):.2f}x")


if __name__ == "__main__":
    main()
