#!/usr/bin/env python
"""The demo under load: 16 concurrent streaming clients (gradio_client) against app.py on 127.0.0.1, several
rounds. Reports requests, completions, p50/p95 latency (first partial answer and complete answer), checks that
every client got the answer to its own prompt (no history leaks: greedy answers equal the one-at-a-time ones),
and the server's memory before and after (bounded).

    python benchmarks/demo_load.py --model outputs/quickstart-instruct [--clients 16 --rounds 3] [--quick]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psutil
from gradio_client import Client

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import add_results_argument, report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ["ball", "cat", "tree", "boat", "cake", "sun", "hat", "fox", "kite", "drum", "shell", "map", "ring",
         "duck", "leaf", "bell"]


def start(model: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "app.py", "--model", model, "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("the demo did not start")
            time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/quickstart-instruct")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--quick", action="store_true")
    add_results_argument(parser)
    a = parser.parse_args()
    rounds = 1 if a.quick else a.rounds
    proc, url = start(a.model)
    server = psutil.Process(proc.pid)
    settings = (0.0, 40, 0.95, a.max_new_tokens, 1.0, 0)  # greedy: each prompt has one right answer
    prompts = [f"Write a story.\nWords: {WORDS[i % len(WORDS)]}, happy" for i in range(a.clients)]
    try:
        # each Client is a new session with an empty history: the answer a lone user gets
        expected = [Client(url, verbose=False).predict(p, *settings, api_name="/chat")[0] for p in prompts]
        rss_before = server.memory_info().rss

        def ask(prompt):
            start_time = time.perf_counter()
            first = None
            job = Client(url, verbose=False).submit(prompt, *settings, api_name="/chat")
            for partial, _speed in job:
                if partial and first is None:
                    first = time.perf_counter() - start_time
            final = job.result()[0]  # the complete answer (iteration can end on the last partial)
            return final, first, time.perf_counter() - start_time

        results = []
        for _ in range(rounds):
            with ThreadPoolExecutor(a.clients) as pool:
                results += list(zip(prompts, pool.map(ask, prompts)))
        rss_after = server.memory_info().rss
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    right = sum(final == expected[prompts.index(p)] for p, (final, _, _) in results)
    complete = [total for _, (final, _, total) in results if final]
    firsts = [first for _, (_, first, _) in results if first is not None]
    q = (lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] if len(xs) > 1 else xs[0])
    rows = [{"requests": len(results), "completed": len(complete), "own answer": right,
             "first partial p50 s": round(q(firsts, 50), 2), "first partial p95 s": round(q(firsts, 95), 2),
             "complete p50 s": round(q(complete, 50), 2), "complete p95 s": round(q(complete, 95), 2),
             "server RSS MB before": round(rss_before / 2**20), "after": round(rss_after / 2**20)}]
    report("demo_load", rows, {"model": a.model, "clients": a.clients, "rounds": rounds,
                               "max_new_tokens": a.max_new_tokens}, a.results_dir)
    ok = len(complete) == len(results) == right and rss_after < rss_before + 300 * 2**20
    print("demo load:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
