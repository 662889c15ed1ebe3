"""Open-model load test of ``sitetune serve`` on loopback: a fixed arrival rate of real questions.

Requests are sent on a schedule (``--rate`` per second for ``--duration`` seconds) whether or not earlier
ones have finished, and each latency is measured from its *scheduled* start, so a slow server cannot
hide its queueing by slowing the generator (no coordinated omission). The server runs as a subprocess
pinned with ``taskset`` to one core; this generator pins itself to another.

    python benchmarks/load.py --store STORE [--rate 50] [--duration 60] [--endpoint search --endpoint answer]

Writes ``benchmarks/results/load.md`` (command, machine, date, throughput, p50/p95/p99, errors).

With ``--workers N`` (repeatable: ``--workers 1 --workers 2``) it compares ``sitetune serve --workers N``
in one run: a server per worker count, pinned to N cores, each loaded with the ``--rate`` steps from the
lowest up until a step misses the goal (p99 over ``--p99-goal`` ms or any error), every request on a new
connection (keep-alive connections stay with the worker that accepted them; nginx proxies with a new
connection per request by default). It writes ``benchmarks/results/load_workers.md``: every step, which
worker answered how many requests, and the highest passing step per worker count with the ratio.

``--generator wrk`` loads the --workers servers with ``wrk`` instead (benchmarks/wrk_client.py: closed
loop, stepping ``--connections``): on a 2-core machine the asyncio generator needs most of the core it
shares with the second worker, ``wrk`` a few percent of it.
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
from urllib.parse import urlencode, urlsplit

from load_step import LoadStep
from machine import describe_machine, write_fragment
from wrk_client import WrkResult, run_wrk

REPO = Path(__file__).resolve().parents[1]
DEFAULT_QUESTIONS = REPO / "src" / "sitetune" / "data" / "questions" / "cbs_questions.json"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "load.md"
WORKERS_OUT = REPO / "benchmarks" / "results" / "load_workers.md"
WORKER_HEADER = "x-sitetune-worker"


@dataclass
class RunResult(LoadStep):
    """One endpoint's run."""

    endpoint: str
    rate: float
    duration_s: float
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    workers: int = 1
    #: Requests answered per worker pid (``X-Sitetune-Worker``), in --workers runs.
    answered_by: dict[str, int] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        values = sorted(self.latencies_ms)
        rank = min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))  # nearest rank
        return values[rank]

    def add_error(self, key: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1


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


def server_cpus(args: argparse.Namespace, workers: int) -> list[int]:
    """The cores the server is pinned to: ``--server-cpu`` and the next ones, one per worker."""
    count = os.cpu_count() or 1
    return sorted({(args.server_cpu + i) % count for i in range(min(workers, count))})


def start_server(args: argparse.Namespace, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """``sitetune serve`` in a subprocess, pinned to one core per worker where taskset exists."""
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
    if workers > 1:
        command += ["--workers", str(workers)]
    command += list(getattr(args, "serve_arg", None) or [])
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", ",".join(map(str, server_cpus(args, workers))), *command]
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


async def fresh_request(base: str, endpoint: str, question: str) -> tuple[int, str | None]:
    """One request on a new connection (``Connection: close``); its status and the answering worker.

    A bare asyncio client: on a 2-core machine the generator shares the cores with two workers, and this
    costs far less CPU per request than an httpx client built for each connection.
    """
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if endpoint == "search":
        body = b""
        start = f"GET /search?{urlencode({'q': question, 'k': 5})} HTTP/1.1\r\n"
    elif endpoint == "answer":
        body = json.dumps({"question": question, "k": 5}).encode()
        start = (f"POST /answer HTTP/1.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n")
    else:  # the health probe
        body = b""
        start = f"GET /{endpoint} HTTP/1.1\r\n"
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"{start}Host: {host}:{port}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        response = await reader.read()  # to the end: the server closes after the whole body
    finally:
        writer.close()
    head = response.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])  # ValueError or IndexError on a truncated answer
    worker = next((line.split(":", 1)[1].strip() for line in head[1:]
                   if line.lower().startswith(f"{WORKER_HEADER}:")), None)
    return status, worker


async def wait_all_workers(base: str, workers: int, timeout_s: float) -> None:
    """Wait until ``workers`` different workers answer (a worker still loading its model accepts nothing)."""
    if workers == 1:
        return  # one process: no supervisor, no worker header; wait_healthy saw it answer
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answers = await asyncio.gather(
            *(fresh_request(base, "healthz", "") for _ in range(2 * workers)), return_exceptions=True
        )
        seen |= {a[1] for a in answers if isinstance(a, tuple) and a[0] == 200 and a[1]}
        if len(seen) >= workers:
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"error: only {len(seen)} of {workers} workers answered within {timeout_s:.0f} s")


async def run_load(
    base: str,
    endpoint: str,
    questions: list[str],
    rate: float,
    duration_s: float,
    timeout_s: float,
    seed: int,
    *,
    fresh_connections: bool = False,
    workers: int = 1,
) -> RunResult:
    """Send ``rate`` requests per second for ``duration_s`` seconds on a fixed schedule.

    With ``fresh_connections`` every request opens its own connection (see :func:`fresh_request`) and the
    answering worker is counted; otherwise an httpx client keeps connections alive.
    """
    import httpx

    result = RunResult(endpoint=endpoint, rate=rate, duration_s=duration_s, workers=workers)
    order = questions[:]
    random.Random(seed).shuffle(order)
    total = int(rate * duration_s)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)

    async with httpx.AsyncClient(base_url=base, timeout=timeout_s, limits=limits) as client:

        async def one(i: int, scheduled: float) -> None:
            question = order[i % len(order)]
            worker = None
            try:
                if fresh_connections:
                    status, worker = await asyncio.wait_for(fresh_request(base, endpoint, question), timeout_s)
                elif endpoint == "search":
                    status = (await client.get("/search", params={"q": question, "k": 5})).status_code
                else:
                    status = (await client.post("/answer", json={"question": question, "k": 5})).status_code
            except (httpx.HTTPError, OSError, TimeoutError, ValueError, IndexError) as exc:
                result.add_error(type(exc).__name__)
                return
            latency = (time.perf_counter() - scheduled) * 1000
            if status == 200:
                result.ok += 1
                result.latencies_ms.append(latency)
                if worker is not None:
                    result.answered_by[worker] = result.answered_by.get(worker, 0) + 1
            else:
                result.add_error(f"HTTP {status}")

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


def row_cells(r: RunResult) -> str:
    """One run's table cells: endpoint, rate, sent, ok, errors, throughput, p50, p95, p99, max."""
    errors = str(r.error_count) + (f" ({', '.join(f'{k}: {v}' for k, v in r.errors.items())})" if r.errors else "")
    name = "GET /search" if r.endpoint == "search" else "POST /answer"
    p50, p95, p99 = (r.percentile(q) for q in (50, 95, 99))
    worst = max(r.latencies_ms, default=float("nan"))
    return (f"`{name}` | {r.rate:g} | {r.sent} | {r.ok} | {errors} | {r.throughput:.1f} | "
            f"{p50:.1f} | {p95:.1f} | {p99:.1f} | {worst:.1f}")


def report(results: list[RunResult], args: argparse.Namespace, argv: list[str], where: str) -> str:
    lines = [
        "## Load: `sitetune serve` under an open-model arrival rate",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {where}",
        f"- Command: `python benchmarks/load.py {' '.join(argv)}`",
        f"- Server: `sitetune serve --store {args.store} --threads 1{''.join(' ' + a for a in args.serve_arg)}`, "
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
    lines += [f"| {row_cells(r)} |" for r in results]
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
    parser.add_argument(
        "--client-cpu", type=int, default=1, help="The generator's CPU (-1 with --generator wrk: the kernel's choice)."
    )
    parser.add_argument("--url", help="Load an already running server instead of starting one.")
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="An argument added to the `sitetune serve` command (repeatable; e.g. --serve-arg=--rerank-weight "
        "--serve-arg=1).",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="Markdown report to write.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        help="Compare `sitetune serve --workers N` for each N given (repeatable; writes load_workers.md).",
    )
    parser.add_argument(
        "--p99-goal", type=float, default=100.0, help="--workers: a step passes with p99 within this (ms)."
    )
    parser.add_argument("--note", action="append", default=[], help="--workers: a note line for the fragment.")
    parser.add_argument(
        "--generator",
        choices=["asyncio", "wrk"],
        default="asyncio",
        help="--workers: the open-model asyncio client (--rate steps) or wrk, closed loop (--connections steps).",
    )
    parser.add_argument(
        "--connections",
        type=int,
        action="append",
        help="--generator wrk: concurrent connections per step (repeatable; default 1 2 4 8 16 32).",
    )
    args = parser.parse_args(argv)
    if args.workers and (min(args.workers) < 1 or args.url):
        parser.error("--workers takes counts of 1 or more and starts its own servers (not with --url)")
    if args.generator == "wrk" and not args.workers:
        parser.error("--generator wrk compares --workers counts")
    if args.client_cpu < 0 and args.generator != "wrk":
        parser.error("--client-cpu -1 (not pinned) is for --generator wrk")
    args.connections = sorted(args.connections or [1, 2, 4, 8, 16, 32])
    return args


def best_passing(
    results: list[RunResult] | list[WrkResult], workers: int, endpoint: str, p99_ms: float
) -> RunResult | WrkResult | None:
    """The highest-throughput step of ``workers`` on ``endpoint`` that met the goal."""
    passing: list[RunResult | WrkResult] = [
        r for r in results if r.workers == workers and r.endpoint == endpoint and r.meets(p99_ms)
    ]
    return max(passing, key=lambda r: r.throughput, default=None)


def wrk_row_cells(r: WrkResult) -> str:
    """A wrk step's cells: endpoint, connections, sent, ok, errors, throughput, p50, p95, p99, max."""
    errors = str(r.error_count) + (f" ({', '.join(f'{k}: {v}' for k, v in r.errors.items())})" if r.errors else "")
    name = "GET /search" if r.endpoint == "search" else "POST /answer"
    return (f"`{name}` | {r.connections} | {r.sent} | {r.ok} | {errors} | {r.throughput:.1f} | "
            f"{r.percentile(50):.1f} | {r.percentile(95):.1f} | {r.percentile(99):.1f} | {r.max_ms:.1f}")


def workers_report(
    results: list[RunResult] | list[WrkResult],
    args: argparse.Namespace,
    argv: list[str],
    where: str,
    endpoints: list[str],
) -> list[str]:
    """The lines of ``load_workers.md``."""
    ncpu = os.cpu_count() or 1
    pinned = "; ".join(
        f"{n} worker{'s' if n > 1 else ''} on CPU{'s' if len(server_cpus(args, n)) > 1 else ''} "
        f"{','.join(map(str, server_cpus(args, n)))}" for n in args.workers
    )
    shared = args.client_cpu < 0 or any(args.client_cpu in server_cpus(args, n) for n in args.workers)
    placed = "placed by the kernel (not pinned)" if args.client_cpu < 0 else f"pinned to CPU {args.client_cpu}"
    wrk = args.generator == "wrk"
    client = "wrk (one thread, closed loop, a new connection per request)" if wrk else \
        "asyncio, one new connection per request"
    load = (
        f"closed-loop steps of {', '.join(map(str, args.connections))} concurrent connections, {args.duration:g} s "
        "each after a 2 s warm-up, climbing until a step misses the goal; latency from each request's send "
        "(a closed loop queues nothing behind a schedule)"
        if wrk else
        f"open-model steps of {', '.join(f'{r:g}' for r in sorted(args.rate))} requests/s, "
        f"{args.duration:g} s each after {args.warmup} warm-up requests, climbing until a step misses the goal "
        f"; latency from each request's scheduled start"
    )
    lines = [
        "## Load: `sitetune serve --workers N`, throughput at 1 and 2 workers "
        + ("(wrk, closed loop)" if wrk else "(open-model asyncio generator)"),
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {where}; load average at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- Command: `python benchmarks/load.py {' '.join(argv)}`",
        f"- Server: `sitetune serve --store {args.store} --threads 1 --workers N`, pinned with taskset: {pinned}; "
        f"generator ({client}) {placed}"
        + (f", so on this {ncpu}-core machine it shares a core with a worker" if shared else ""),
        f"- Load: {load} (goal: p99 ≤ {args.p99_goal:g} ms and 0 errors); the "
        f"{len(load_questions(Path(args.questions)))} questions of {Path(args.questions).name} in a cycle",
        "",
        f"| workers | endpoint | {'connections' if wrk else 'rate (req/s)'} | sent | ok | errors | throughput (req/s) "
        "| p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | answered per worker |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in results:
        shares = " / ".join(str(v) for v in sorted(run.answered_by.values(), reverse=True)) or str(run.ok)
        cells = wrk_row_cells(run) if isinstance(run, WrkResult) else row_cells(run)
        lines.append(f"| {run.workers} | {cells} | {shares} |")
    lines += ["", f"Highest step meeting the goal (p99 ≤ {args.p99_goal:g} ms, 0 errors):", ""]
    for endpoint in endpoints:
        name = "GET /search" if endpoint == "search" else "POST /answer"
        best = {n: best_passing(results, n, endpoint, args.p99_goal) for n in args.workers}
        for n, r in best.items():
            step = "" if r is None else (
                f"{r.connections} connections" if isinstance(r, WrkResult) else f"step {r.rate:g}/s")
            shown = (f"{r.throughput:.1f} req/s ({step}, p99 {r.percentile(99):.1f} ms)"
                     if r else "no step passed")
            lines.append(f"- `{name}`, {n} worker{'s' if n > 1 else ''}: {shown}")
        one, most = best.get(min(args.workers)), best.get(max(args.workers))
        if len(best) > 1 and one and most:
            lines.append(
                f"- `{name}`: {max(args.workers)} workers / {min(args.workers)}: "
                f"**{most.throughput / one.throughput:.2f}x** (goal ≥ 1.6x)"
            )
    if args.note:
        lines += ["", "Notes:", "", *(f"- {note}" for note in args.note)]
    return lines


def main_workers(args: argparse.Namespace, argv: list[str], endpoints: list[str], where: str) -> int:
    """``--workers``: a server per worker count, stepped rates, one fragment with every step."""
    questions = load_questions(Path(args.questions))
    results: list[RunResult] = []
    stepped: list[WrkResult] = []
    for workers in args.workers:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start_server(args, port, workers)  # before pinning this process: a child inherits it
        if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity") and args.client_cpu >= 0:
            os.sched_setaffinity(0, {args.client_cpu})
        try:
            asyncio.run(wait_healthy(base, 300, process))
            asyncio.run(wait_all_workers(base, workers, 300))
            if args.generator == "wrk":
                stepped += wrk_steps(args, base, endpoints, questions, workers)
                continue
            for endpoint in endpoints:
                for rate in sorted(args.rate):
                    warm = max(1, args.warmup)
                    asyncio.run(run_load(base, endpoint, questions, rate=min(rate, 20), duration_s=warm / min(rate, 20),
                                         timeout_s=args.timeout, seed=args.seed + 1, fresh_connections=True))
                    result = asyncio.run(run_load(base, endpoint, questions, rate, args.duration, args.timeout,
                                                  args.seed, fresh_connections=True, workers=workers))
                    results.append(result)
                    asyncio.run(drain(base))
                    print(result.progress(f"{endpoint} @ {rate:g}/s"), flush=True)
                    if not result.meets(args.p99_goal):
                        break  # the next step up would miss it too
        finally:
            stop_server(process)
    out = Path(args.out) if args.out != str(DEFAULT_OUT) else WORKERS_OUT
    write_fragment(out, workers_report(stepped or results, args, argv, where, endpoints))
    return 0


def wrk_steps(
    args: argparse.Namespace, base: str, endpoints: list[str], questions: list[str], workers: int
) -> list[WrkResult]:
    """``--generator wrk``: the connection steps on one server, up to the first that misses the goal."""
    steps = []
    cpu = None if args.client_cpu < 0 else args.client_cpu
    for endpoint in endpoints:
        run_wrk(base, endpoint, questions, 1, 2, args.timeout, workers, cpu)  # warm-up
        for connections in args.connections:
            result = run_wrk(base, endpoint, questions, connections, args.duration, args.timeout, workers, cpu)
            steps.append(result)
            print(result.progress(f"{endpoint}, {connections} connections"), flush=True)
            if not result.meets(args.p99_goal):
                break
    return steps


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.rate = args.rate or [50.0]
    endpoints = args.endpoint or ["search"]
    if args.workers:
        return main_workers(args, argv, endpoints, describe_machine())
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
