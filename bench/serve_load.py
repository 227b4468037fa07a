"""Load test of ``anymal serve`` with adapters swapped under it: requests from concurrent clients while another
client hot-loads a different adapter over HTTP again and again, on the real default LLM and the IMU plugin's
bundled adapter.

    python bench/serve_load.py [--requests 1000] [--swaps 100] [--clients 8] [--max-tokens 8]

Two IMU adapters take turns under one name (``imu-live``, the active IMU adapter): ``A``, the bundled
``imu-linear``, and ``B``, the same package with its projector's weights negated (a valid package that answers
differently). Before the load, each is asked the test questions alone, which gives every question's answer
under A and under B. During the load every request must succeed and its answer must be exactly A's or B's
(never a mix of the two, never an error), and the adapter the response names must be ``imu-live``. The swapper
loads the other package (POST /v1/adapters) ``swaps`` times, spread over the run. Prints the failures, the
answers that matched neither adapter, the swaps done, and the throughput.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

KEY = "bench-key"


def negated_copy(source: Path, target: Path) -> Path:
    """``source`` with every projector weight negated, as a new package (the config is the same but its name)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    config = json.loads((target / "anymal_adapter.json").read_text())
    config["name"] = "imu-negated"
    (target / "anymal_adapter.json").write_text(json.dumps(config, indent=2))
    path = str(target / "adapter.safetensors")
    with safe_open(path, "pt") as file:
        metadata = file.metadata()  # the package's own (LLM fingerprint, modality): kept as they are
    weights = load_file(path)
    save_file({k: (-v if k.startswith("projector.") else v).contiguous() for k, v in weights.items()}, path,
              metadata=metadata)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()

    import openai
    import urllib.request
    import uvicorn

    from anymal_host import AnymalHost
    from anymal_host.serving import ServeConfig, create_app
    from anymal_plugin_imu.modality import EXAMPLES_DIR
    from anymal_plugin_imu.plugin import ADAPTERS_DIR

    folder = Path(tempfile.mkdtemp())
    package_a = ADAPTERS_DIR / "imu-linear"
    package_b = negated_copy(package_a, folder / "imu-negated")
    host = AnymalHost()
    host.load_adapter(str(package_a), name="imu-live")
    server = uvicorn.Server(uvicorn.Config(create_app(host, ServeConfig(api_key=KEY, max_queue=4 * args.clients)),
                                           host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=600)
    files = sorted(EXAMPLES_DIR.glob("*.csv"))[:4]
    parts = [{"type": "file", "file": {"file_data": base64.b64encode(f.read_bytes()).decode(), "filename": f.name}}
             for f in files]

    def ask(i: int) -> tuple[str, dict]:
        reply = client.chat.completions.create(model="default", max_tokens=args.max_tokens, messages=[
            {"role": "user", "content": [parts[i % len(parts)], {"type": "text", "text": "What is the person doing?"}]}])
        return reply.choices[0].message.content, reply.model_extra.get("anymal", {})

    def swap(package: Path) -> None:
        body = json.dumps({"ref": str(package), "name": "imu-live"}).encode()
        request = urllib.request.Request(f"{url}/v1/adapters", data=body, method="POST", headers={
            "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=600).read()

    references = {}
    for name, package in (("A", package_a), ("B", package_b)):
        swap(package)
        references[name] = [ask(i)[0] for i in range(len(parts))]
    swap(package_a)
    differ = sum(a != b for a, b in zip(references["A"], references["B"]))
    print(f"reference answers: A and B differ on {differ} of {len(parts)} questions")

    done, swaps, stop = [0], [0], threading.Event()

    def swapper() -> None:
        packages = [package_b, package_a]
        every = args.requests / (args.swaps + 1)
        while swaps[0] < args.swaps and not stop.is_set():
            if done[0] >= every * (swaps[0] + 1):
                swap(packages[swaps[0] % 2])
                swaps[0] += 1
            else:
                time.sleep(0.005)

    failures, mixed, names = [], [], set()

    def one(i: int) -> None:
        try:
            answer, extension = ask(i)
        except Exception as exc:  # noqa: BLE001 - counted
            failures.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            done[0] += 1
        names.add(extension.get("adapters", {}).get("imu"))
        if answer not in (references["A"][i % len(parts)], references["B"][i % len(parts)]):
            mixed.append(answer)

    started = time.perf_counter()
    swap_thread = threading.Thread(target=swapper)
    swap_thread.start()
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(one, range(args.requests)))
    elapsed = time.perf_counter() - started
    stop.set()
    swap_thread.join()
    server.should_exit = True
    print(f"{args.requests} requests from {args.clients} clients, max_tokens {args.max_tokens}, in {elapsed:.1f} s "
          f"({args.requests / elapsed:.2f} answers/s), {swaps[0]} swaps")
    print(f"failed requests: {len(failures)}" + (f" (first: {failures[0]})" if failures else ""))
    print(f"answers from neither adapter: {len(mixed)}" + (f" (first: {mixed[0]!r})" if mixed else ""))
    print(f"adapter names reported: {sorted(map(str, names))}")


if __name__ == "__main__":
    main()
