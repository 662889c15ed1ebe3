"""Open-model load test of ``sitetune serve`` on loopback: a fixed arrival rate of real questions.

Requests are sent on a schedule (``--rate`` per second for ``--duration`` seconds) whether or not earlier
ones have finished, and each latency is measured from its *scheduled* start, so a slow server cannot
hide its queueing by slowing the generator (no coordinated omission). The server runs as a subprocess
pinned with ``taskset`` to one core; this generator pins itself to another.

    python benchmarks/load.py --store STORE [--rate 50] [--duration 60] [--endpoint search --endpoint answer]

Writes ``benchmarks/results/load.md`` (command, machine, date, throughput, p50/p95/p99, errors).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from machine import describe_machine

REPO = Path(__file__).resolve().parents[1]
DEFAULT_QUESTIONS = REPO / "src" / "sitetune" / "data" / "questions" / "cbs_questions.json"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "load.md"


@dataclass
class RunResult:
    """One endpoint's run."""

    endpoint: str
    rate: float
    duration_s: float
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        values = sorted(self.latencies_ms)
        rank = min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))  # nearest rank
        return values[rank]

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def load_questions(path: Path) -> list[str]:
    """Question texts from a question file (``{"queries": [{"text": ...}]}``) or a plain list."""
    data = json.loads(path.read_text(encoding="utf-8"))
    items = data["queries"] if isinstance(data, dict) else data
    texts = [item["text"] if isinstance(item, dict) else str(item) for item in items]
    if not texts:
        raise SystemExit(f"error: no questions in {path}")
    return texts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    """``sitetune serve`` in a subprocess, pinned to ``--server-cpu`` where taskset exists."""
    command = [
        sys.executable,
        "-m",
        "sitetune.cli.main",
        "serve",
        "--store",
        args.store,
        "--port",
        str(port),
        "--threads",
        "1",
    ]
    if args.model:
        command += ["--model", args.model]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", str(args.server_cpu), *command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def wait_healthy(base: str, timeout_s: float, process: subprocess.Popen[bytes] | None) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise SystemExit(f"error: the server exited ({process.returncode}):\n{output[-2000:]}")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
    raise SystemExit(f"error: {base}/healthz did not answer within {timeout_s:.0f} s")


async def drain(base: str, limit_s: float = 180.0) -> None:
    """Wait until the server has worked off any backlog: a search answers within half a second."""
    import httpx

    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await client.get(f"{base}/search", params={"q": "drain check", "k": 1})
            if time.perf_counter() - start < 0.5:
                return
            await asyncio.sleep(1)


async def run_load(
    base: str,
    endpoint: str,
    questions: list[str],
    rate: float,
    duration_s: float,
    timeout_s: float,
    seed: int,
) -> RunResult:
    """Send ``rate`` requests per second for ``duration_s`` seconds on a fixed schedule."""
    import httpx

    result = RunResult(endpoint=endpoint, rate=rate, duration_s=duration_s)
    order = questions[:]
    random.Random(seed).shuffle(order)
    total = int(rate * duration_s)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)

    async with httpx.AsyncClient(base_url=base, timeout=timeout_s, limits=limits) as client:

        async def one(i: int, scheduled: float) -> None:
            question = order[i % len(order)]
            try:
                if endpoint == "search":
                    response = await client.get("/search", params={"q": question, "k": 5})
                else:
                    response = await client.post("/answer", json={"question": question, "k": 5})
                latency = (time.perf_counter() - scheduled) * 1000
                if response.status_code == 200:
                    result.ok += 1
                    result.latencies_ms.append(latency)
                else:
                    key = f"HTTP {response.status_code}"
                    result.errors[key] = result.errors.get(key, 0) + 1
            except httpx.HTTPError as exc:
                key = type(exc).__name__
                result.errors[key] = result.errors.get(key, 0) + 1

        start = time.perf_counter()
        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
            result.sent += 1
        await asyncio.gather(*tasks)
        result.wall_s = time.perf_counter() - start
    return result


def report(results: list[RunResult], args: argparse.Namespace, argv: list[str], where: str) -> str:
    lines = [
        "## Load: `sitetune serve` under an open-model arrival rate",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {where}",
        f"- Command: `python benchmarks/load.py {' '.join(argv)}`",
        f"- Server: `sitetune serve --store {args.store} --threads 1`, "
        f"pinned to CPU {args.server_cpu} with taskset; "
        f"generator (httpx, asyncio) pinned to CPU {args.client_cpu}; loopback",
        f"- Load: {', '.join(f'{r:g}' for r in args.rate)} requests/s, {args.duration:g} s per run after "
        f"{args.warmup} warm-up "
        f"requests, the {len(load_questions(Path(args.questions)))} questions of {Path(args.questions).name} "
        "in a fixed shuffled cycle; latency measured from each request's scheduled start",
        "",
        "| endpoint | rate (req/s) | sent | ok | errors | throughput (req/s) | p50 (ms) | p95 (ms) "
        "| p99 (ms) | max (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        errors = str(r.error_count) + (
            f" ({', '.join(f'{k}: {v}' for k, v in r.errors.items())})" if r.errors else ""
        )
        name = "GET /search" if r.endpoint == "search" else "POST /answer"
        p50, p95, p99 = (r.percentile(q) for q in (50, 95, 99))
        worst = max(r.latencies_ms, default=float("nan"))
        lines.append(
            f"| `{name}` | {r.rate:g} | {r.sent} | {r.ok} | {errors} | {r.throughput:.1f} | "
            f"{p50:.1f} | {p95:.1f} | {p99:.1f} | {worst:.1f} |"
        )
    lines += ["", "Goal: 0 errors and p99 under 100 ms at 50 requests/s.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", required=True, help="Index store to serve.")
    parser.add_argument("--model", help="Query model (default: the store's).")
    parser.add_argument(
        "--rate", type=float, action="append", help="Requests per second (repeatable; default 50)."
    )
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds of load per endpoint.")
    parser.add_argument("--warmup", type=int, default=20, help="Requests sent before measuring.")
    parser.add_argument(
        "--endpoint",
        action="append",
        choices=["search", "answer"],
        help="Endpoint(s) to load, one run each (default: search).",
    )
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS), help="Question file.")
    parser.add_argument("--timeout", type=float, default=10.0, help="Per-request time limit (s).")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--url", help="Load an already running server instead of starting one.")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="Markdown report to write.")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.rate = args.rate or [50.0]
    endpoints = args.endpoint or ["search"]
    questions = load_questions(Path(args.questions))
    where = describe_machine()
    process = None
    if args.url:
        base = args.url.rstrip("/")
    else:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start_server(args, port)
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})
    results = []
    try:
        asyncio.run(wait_healthy(base, 180, process))
        for endpoint in endpoints:
            for rate in args.rate:
                warm = max(1, args.warmup)
                asyncio.run(
                    run_load(
                        base,
                        endpoint,
                        questions,
                        rate=min(rate, 20),
                        duration_s=warm / min(rate, 20),
                        timeout_s=args.timeout,
                        seed=args.seed + 1,
                    )
                )
                result = asyncio.run(
                    run_load(base, endpoint, questions, rate, args.duration, args.timeout, args.seed)
                )
                results.append(result)
                asyncio.run(drain(base))  # an overloaded run leaves queued work behind
                print(
                    f"{endpoint} @ {rate:g}/s: sent {result.sent}, ok {result.ok}, "
                    f"errors {result.error_count} {result.errors}, "
                    f"{result.throughput:.1f} req/s, p50 {result.percentile(50):.1f} ms, "
                    f"p95 {result.percentile(95):.1f} ms, p99 {result.percentile(99):.1f} ms"
                )
    finally:
        if process is not None:
            stop_server(process)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(results, args, argv, where), encoding="utf-8")
    print(f"wrote {out}")
    return 0 if all(r.error_count == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
