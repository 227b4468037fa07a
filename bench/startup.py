"""Start-up of `anymal chat` with the embedded default LLM: the first run (GGUF -> safetensors conversion)
against later runs (loading the converted cache), measured side by side in one run and printed as a ratio.

    python bench/startup.py [--repeats 3]
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


def run_chat(home: str) -> tuple[float, str]:
    env = {**os.environ, "ANYMAL_HOME": home, "ANYMAL_LOAD_PLUGINS": ""}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "anymal_host.cli", "chat", PROMPT, "--max-new-tokens", "12"],
                            env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="first runs and cached runs to time (default 3)")
    args = parser.parse_args()
    first, cached = [], []
    for i in range(args.repeats):
        home = tempfile.mkdtemp(prefix="anymal-bench-")
        try:
            seconds, answer = run_chat(home)  # empty cache: converts the GGUF
            first.append(seconds)
            seconds, answer = run_chat(home)  # cache filled: loads safetensors
            cached.append(seconds)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        print(f"round {i + 1}: first {first[-1]:.2f} s, cached {cached[-1]:.2f} s  ({answer!r})")
    first_median, cached_median = statistics.median(first), statistics.median(cached)
    print(f"\n`anymal chat` start-up, median of {args.repeats}: first run {first_median:.2f} s, "
          f"cached {cached_median:.2f} s")
    print(f"ratio first / cached: {first_median / cached_median:.2f}x")


if __name__ == "__main__":
    main()
