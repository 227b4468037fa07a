"""Throughput of ``anymal serve`` with concurrent clients against the same requests sent one at a time,
measured side by side in one run on the real default LLM (SmolLM2-135M-Instruct).

    python bench/serve.py [--clients 8] [--rounds 2] [--max-tokens 32]

A server runs in this process on 127.0.0.1. Each round sends ``clients`` different questions (the same set in
both modes) once one after another, then all at once from ``clients`` threads with the ``openai`` client. The
ratio printed last is (concurrent answers per second) / (sequential answers per second); above 1, the server's
batching pays. The batch sizes the server formed are read from its /metrics.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import threading
import time

QUESTIONS = ["What is the capital of France?", "Name three colours.", "What is 2 + 2?", "Say hello in Spanish.",
             "What is the largest planet?", "Name a fruit that is yellow.", "What do bees make?",
             "How many days are in a week?", "What is water made of?", "Name a musical instrument.",
             "What is the opposite of hot?", "Which animal barks?", "What colour is the sky?",
             "Name a shape with three sides.", "What is frozen water called?", "What do plants need to grow?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each mode, alternating (default 2)")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every request (default 32)")
    args = parser.parse_args()

    import openai
    import uvicorn

    from anymal_host import AnymalHost
    from anymal_host.serving import ServeConfig, create_app

    host = AnymalHost()
    config = ServeConfig(max_batch_size=args.clients, batch_window_ms=15.0)
    server = uvicorn.Server(uvicorn.Config(create_app(host, config), host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0, timeout=600)
    questions = (QUESTIONS * (args.clients // len(QUESTIONS) + 1))[:args.clients]

    def ask(question: str) -> str:
        reply = client.chat.completions.create(model="default", max_tokens=args.max_tokens, temperature=0,
                                               messages=[{"role": "user", "content": question}])
        return reply.choices[0].message.content

    ask("warm up")
    sequential, concurrent_ = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        one_by_one = [ask(q) for q in questions]
        sequential.append(time.perf_counter() - started)
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            together = list(pool.map(ask, questions))
        concurrent_.append(time.perf_counter() - started)
        same = sum(a == b for a, b in zip(one_by_one, together))
    import urllib.request

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    count = next(float(l.split()[1]) for l in metrics.splitlines() if l.startswith("anymal_batch_size_count"))
    total = next(float(l.split()[1]) for l in metrics.splitlines() if l.startswith("anymal_batch_size_sum"))
    server.should_exit = True
    seq, con = statistics.median(sequential), statistics.median(concurrent_)
    print(f"{args.clients} requests of max_tokens {args.max_tokens}, medians of {args.rounds} rounds; "
          f"torch threads {__import__('torch').get_num_threads()}")
    print(f"  one at a time   {seq:7.2f} s  ({args.clients / seq:.2f} answers/s)")
    print(f"  {args.clients} concurrent    {con:7.2f} s  ({args.clients / con:.2f} answers/s)")
    print(f"  batches formed: {count:.0f} for {total:.0f} requests (mean size {total / count:.2f}); "
          f"answers identical in both modes: {same}/{args.clients}")
    print(f"concurrent / sequential throughput = {seq / con:.2f}")


if __name__ == "__main__":
    main()
