"""`seqnlp serve` under load, on 127.0.0.1 only: requests per second and latency per endpoint at 1, 8 and 32
concurrent clients, the server's resident memory over many requests, and the same answers from the Python API
in-process and from the CLI per call (what HTTP costs, and why a server).

    python benchmarks/serving.py [--clients 1 8 32] [--requests 200] [--memory-requests 10000] [PACKAGE ...]

Run it in a checkout after the pipeline (default: every task's package), or give package folders. It
starts `seqnlp serve --port 0` itself and stops it at the end. Each endpoint gets ``--requests`` requests at
each client count, every request with one input (a text, a prefix for 100 characters, a pair, a question
for its 5 nearest), after 3 warm-up requests; a level stops early at ``--seconds``. Every answer is
checked for status 200; the error count is printed and must be 0. Memory is the server's resident set
(psutil) after the warm-up and after ``--memory-requests`` more requests to the first endpoint (/classify
where the topics model is served; 8 clients).
"""

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

os.environ.setdefault("TQDM_DISABLE", "1")  # the in-process calls' progress bars

import seqnlp  # noqa: E402

BODIES = {
    "classify": ({"texts": ["Shares of the chip maker rose after strong quarterly earnings"]},
                 lambda model: model.predict(["Shares of the chip maker rose after strong quarterly earnings"]),
                 ["classify", "Shares of the chip maker rose after strong quarterly earnings"]),
    "generate": ({"prefixes": ["to be"], "length": 100, "seed": 1},
                 lambda model: model.generate("to be", 1, 100, 1.0, 1),
                 ["generate", "--prefix", "to be", "--length", "100", "--seed", "1"]),
    "tag": ({"texts": ["Mr. Smith flew from Paris to Berlin on Monday."]},
            lambda model: model.tag(["Mr. Smith flew from Paris to Berlin on Monday."]),
            ["tag", "Mr. Smith flew from Paris to Berlin on Monday."]),
    "duplicates": ({"pairs": [["How do I learn Python?", "What is the best way to learn Python?"]]},
                   lambda model: model.judge([["How do I learn Python?", "What is the best way to learn Python?"]]),
                   ["duplicates", "How do I learn Python?", "What is the best way to learn Python?"]),
    "similar": ({"questions": ["How can I lose weight fast?"], "top": 5},
                lambda model: model.similar("How can I lose weight fast?", 5),
                ["similar", "How can I lose weight fast?"]),
}


def start_server(packages):
    process = subprocess.Popen([str(Path(sys.executable).with_name("seqnlp")), "serve", *map(str, packages),
                                "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    found = re.search(r"http://[\d.]+:\d+", line)
    if not found:
        process.kill()
        sys.exit(f"seqnlp serve did not start: {line!r}")
    return process, found.group(), re.search(r"answers with (.*) \(", line).group(1).split(", ")


async def load(url, command, body, clients, requests, seconds):
    """(latencies of the answered requests, errors, wall seconds) of ``requests`` requests from ``clients``
    concurrent clients, stopping early at ``seconds``."""
    latencies, errors, sent = [], 0, 0
    deadline = time.perf_counter() + seconds

    async def client(session):
        nonlocal errors, sent
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            started = time.perf_counter()
            try:
                response = await session.post(f"{url}/{command}", json=body)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return latencies, errors, time.perf_counter() - started


def percentile(values, q):
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", nargs="*", type=Path, help="package folders (default: the checkout's tasks)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint and client count")
    parser.add_argument("--seconds", type=float, default=60, help="time cap per endpoint and client count")
    parser.add_argument("--memory-requests", type=int, default=10_000)
    parser.add_argument("--cli-runs", type=int, default=3, help="CLI calls per endpoint (a new process each)")
    args = parser.parse_args()

    process, url, served = start_server(args.packages)
    try:
        cards = {card["name"]: card for card in httpx.get(f"{url}/models").json()["models"]}
        commands = {command: next(name for name, card in cards.items() if command in card["commands"])
                    for command in BODIES if any(command in card["commands"] for card in cards.values())}
        print(f"seqnlp serve at {url}: {', '.join(served)}; {len(commands)} endpoints, one input per request")
        server = psutil.Process(process.pid)
        total_errors, single_client_p50 = 0, {}
        print(f"{'endpoint':<11} {'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} "
              f"{'p95 ms':>8} {'p99 ms':>8}")
        for command, model in commands.items():
            body = {**BODIES[command][0], "model": model}
            asyncio.run(load(url, command, body, 1, 3, args.seconds))  # compile and warm up
            for clients in args.clients:
                latencies, errors, wall = asyncio.run(load(url, command, body, clients, args.requests, args.seconds))
                total_errors += errors
                if clients == 1:
                    single_client_p50[command] = 1000 * percentile(latencies, 50)
                print(f"{command:<11} {clients:>7} {len(latencies) + errors:>8} {errors:>6} "
                      f"{len(latencies) / wall:>8.1f} {1000 * percentile(latencies, 50):>8.1f} "
                      f"{1000 * percentile(latencies, 95):>8.1f} {1000 * percentile(latencies, 99):>8.1f}")
        before = server.memory_info().rss
        command = next(iter(commands))  # classify, where the topics model is served
        body = {**BODIES[command][0], "model": commands[command]}
        latencies, errors, wall = asyncio.run(load(url, command, body, 8, args.memory_requests, 1e9))
        total_errors += errors
        after = server.memory_info().rss
        print(f"server resident memory: {before / 2**20:.0f} MB before and {after / 2**20:.0f} MB after "
              f"{len(latencies) + errors:,} more /{command} requests ({(after - before) / 2**20:+.1f} MB; "
              f"{len(latencies) / wall:.0f} req/s at 8 clients)")
    finally:
        process.terminate()
        process.wait(timeout=30)

    print(f"{'endpoint':<11} {'HTTP, 1 client, p50 ms':>22} {'Python API, median ms':>22} {'CLI per call, median s':>23}")
    for command, model in commands.items():
        source = next((path for path in args.packages if cards[model]["task"] == path.name), None) or model
        predictor, call, cli = seqnlp.load(source), BODIES[command][1], BODIES[command][2]
        call(predictor)
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            call(predictor)
            timings.append(time.perf_counter() - started)
        target = ["--package", str(source)] if isinstance(source, Path) else ["--model", model]
        cli_seconds = []
        for _ in range(args.cli_runs):
            started = time.perf_counter()
            subprocess.run([str(Path(sys.executable).with_name("seqnlp")), *cli, *target], check=True,
                           capture_output=True)
            cli_seconds.append(time.perf_counter() - started)
        http = f"{single_client_p50[command]:.1f}" if command in single_client_p50 else "-"
        print(f"{command:<11} {http:>22} {1000 * statistics.median(timings):>22.1f} "
              f"{statistics.median(cli_seconds):>23.2f}")
    print(f"errors: {total_errors}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
