"""Hostile load (issue 29): does a normal client stay fast while four others send worst-case requests?

For each ``--workers`` count this starts a fake OpenAI-compatible endpoint on 127.0.0.1 whose
``/v1/chat/completions`` sleeps ``--llm-sleep`` seconds (5) before a valid completion, and
``sitetune serve --workers N --llm-url ... --llm-model fake`` over ``--store`` (load.py's ``start_server``:
a subprocess on 127.0.0.1, pinned with taskset to one core per worker). Once ``/healthz`` answers (and every
worker has), five normal searches warm it up and the RSS of the serving process tree is read: idle. Then, for
``--seconds`` (30), six clients run, each with its own httpx client and a new connection per request (the four
hostile ones in processes of their own, so their fast refusals cannot starve the measuring threads of the GIL):

* four hostile clients, back to back: ``/search`` with one random 999-letter word; ``/search`` with a
  1,000-character query of random words; ``/answer`` with a normal question (the slow LLM answers it);
  ``/answer`` with a random 999-letter word. Their statuses are counted, not treated as errors of the
  benchmark: a 503 from the LLM call bound or the admission bound is expected, and so is a 422 for the
  three long queries, which are over ``serve --max-query-chars`` (300 by default) and so are refused before
  any model work. That refusal is the defence being measured: the server no longer spends seconds of
  model time on them;
* a normal client: ``/search?q=when is the application deadline`` every 100 ms;
* a health probe: ``/healthz`` every 200 ms.

Each client connects from its own loopback address (the normal client 127.0.0.2, the probe 127.0.0.3, the
hostile ones 127.0.0.10 to .13), as separate machines would: the server's model lock takes turns by client
address (``sitetune.serve.fairlock``), so a hostile client's queued requests do not hold up the normal one.
``--one-address`` sends everything from 127.0.0.1 instead, as through one reverse proxy on another host.

The normal client's and the probe's latencies are measured from each request's *scheduled* send time (as in
load.py), so a stalled server cannot hide its stall by delaying the next request. The serving processes' RSS
(``/proc/PID/status`` VmRSS of the server and all its descendants) is sampled every 0.5 s and the peak kept,
for the whole tree and for each process. Then the server gets SIGTERM and the endpoint is shut down.

The goal: normal ``/search`` p99 ≤ 50 ms and ``/healthz`` p99 ≤ 20 ms (with no failed normal requests), and
no serving process more than 200 MB above its idle RSS. Writes ``benchmarks/results/hostile_load.md`` and
prints it. All traffic stays on 127.0.0.1.

Usage:
    python benchmarks/hostile_load.py --store STORE [--workers 1 --workers 2] [--seconds 30] \\
        [--out benchmarks/results/hostile_load.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import signal
import string
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from load import DEFAULT_QUESTIONS, RunResult, free_port, load_questions, start_server, wait_all_workers, wait_healthy
from machine import describe_machine, write_fragment

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "hostile_load.md"
NORMAL_QUERY = "when is the application deadline"
NORMAL_INTERVAL_S = 0.1
HEALTH_INTERVAL_S = 0.2
SAMPLE_INTERVAL_S = 0.5
LONG_WORD_CHARS = 999
LONG_QUERY_CHARS = 1000
#: A bound on any one client's requests, whatever the clock says.
MAX_REQUESTS_PER_CLIENT = 100_000
SEARCH_P99_GOAL_MS = 50.0
HEALTH_P99_GOAL_MS = 20.0
MEMORY_GOAL_MB = 200.0
MB = 1_000_000


# --- the slow LLM endpoint ---------------------------------------------------------------------------------


@dataclass
class SlowLLM:
    """A ThreadingHTTPServer on 127.0.0.1 that answers chat completions after ``delay_s`` seconds.

    Attributes:
        url: The API base for ``--llm-url`` (``http://127.0.0.1:PORT/v1``).
        calls: Chat-completion requests received so far.
    """

    httpd: ThreadingHTTPServer
    thread: threading.Thread
    url: str
    calls: list[int] = field(default_factory=lambda: [0])

    def close(self) -> None:
        """Stop serving; handlers still sleeping are daemon threads and end with the benchmark."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def completion_body(model: str) -> bytes:
    """A valid chat-completions response that cites the first source."""
    message = {"role": "assistant", "content": "The answer is in the first source [1]."}
    body = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
    }
    return json.dumps(body).encode()


def start_slow_llm(delay_s: float) -> SlowLLM:
    """Start the fake endpoint on an ephemeral loopback port."""
    calls = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                calls[0] += 1
            time.sleep(delay_s)
            if self.path.rstrip("/") == "/v1/chat/completions":
                status, payload = 200, completion_body(str(json.loads(body or b"{}").get("model", "fake")))
            else:
                status, payload = 404, b'{"error": "not found"}'
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server gave up
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return SlowLLM(httpd, thread, f"http://127.0.0.1:{httpd.server_address[1]}/v1", calls)


# --- the server ----------------------------------------------------------------------------------------------


def server_args(args: argparse.Namespace, llm_url: str) -> argparse.Namespace:
    """``args`` for load.py's ``start_server``, with the LLM flags added to the ``serve`` command."""
    llm_flags = ["--llm-url", llm_url, "--llm-model", "fake", "--llm-timeout", f"{args.llm_timeout:g}"]
    return argparse.Namespace(**{**vars(args), "serve_arg": [*args.serve_arg, *llm_flags]})


def keep_draining(process: subprocess.Popen[bytes]) -> deque[str]:
    """Read the server's output in a thread (a full pipe would block it); the last 50 lines are kept."""
    tail: deque[str] = deque(maxlen=50)

    def read() -> None:
        if process.stdout is not None:
            for line in process.stdout:
                tail.append(line.decode(errors="replace").rstrip())

    threading.Thread(target=read, daemon=True).start()
    return tail


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the supervisor stops its workers) and wait; SIGKILL its process group if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own session (start_new_session): only our processes
        process.wait(5)


# --- memory of the serving process tree ------------------------------------------------------------------


def parent_pids() -> dict[int, int]:
    """Every visible process's parent, from ``/proc/PID/stat``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in parent_pids().items():
        children.setdefault(parent, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def rss_bytes(pid: int) -> int | None:
    """A process's resident set size (VmRSS), or ``None`` once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def sample_rss(root: int) -> dict[int, int]:
    """RSS in bytes of every live process in ``root``'s tree."""
    sizes = {pid: rss_bytes(pid) for pid in process_tree(root)}
    return {pid: size for pid, size in sizes.items() if size is not None}


@dataclass
class MemoryPeak:
    """The largest RSS seen while sampling: of the whole tree, and of each process."""

    total: int = 0
    by_pid: dict[int, int] = field(default_factory=dict)

    def add(self, sample: dict[int, int]) -> None:
        self.total = max(self.total, sum(sample.values()))
        for pid, size in sample.items():
            self.by_pid[pid] = max(self.by_pid.get(pid, 0), size)


def sample_until(root: int, stop: threading.Event, peak: MemoryPeak) -> None:
    """Sample the tree's RSS every 0.5 s until ``stop`` is set (bounded by the count as well)."""
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        peak.add(sample_rss(root))
        if stop.wait(SAMPLE_INTERVAL_S):
            return


def idle_rss(root: int) -> dict[int, int]:
    """The tree's RSS at rest: the last of three samples 0.5 s apart."""
    sample: dict[int, int] = {}
    for _ in range(3):
        time.sleep(SAMPLE_INTERVAL_S)
        sample = sample_rss(root)
    return sample


# --- clients -------------------------------------------------------------------------------------------------


def fresh_client(base: str, timeout_s: float, source: str | None = None) -> httpx.Client:
    """An httpx client that opens a new connection per request (as nginx proxies by default).

    ``source``: the local address its connections come from (another 127.0.0.N is another client to the
    server); ``None``: the system's choice.
    """
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=0)
    transport = httpx.HTTPTransport(local_address=source, limits=limits)
    return httpx.Client(base_url=base, timeout=timeout_s, transport=transport, headers={"Connection": "close"})


def source_address(args: argparse.Namespace, n: int) -> str | None:
    """Client ``n``'s loopback address (127.0.0.N), or ``None`` with ``--one-address``."""
    return None if args.one_address else f"127.0.0.{n}"


def long_word(rng: random.Random, chars: int = LONG_WORD_CHARS) -> str:
    """One random lowercase "word" of ``chars`` letters."""
    return "".join(rng.choices(string.ascii_lowercase, k=chars))


def long_query(rng: random.Random, chars: int = LONG_QUERY_CHARS) -> str:
    """Random words of 2 to 12 letters, separated by spaces, exactly ``chars`` characters long."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) <= chars:
        words.append(long_word(rng, rng.randint(2, 12)))
    text = " ".join(words)[:chars]
    return text[:-1] + rng.choice(string.ascii_lowercase) if text.endswith(" ") else text


#: A hostile request: (client, random source, normal questions) -> the response.
Hostile = Callable[[httpx.Client, random.Random, list[str]], httpx.Response]

HOSTILE: dict[str, Hostile] = {
    "/search, 999-letter word": lambda c, rng, _: c.get("/search", params={"q": long_word(rng), "k": 5}),
    "/search, 1,000-character query": lambda c, rng, _: c.get("/search", params={"q": long_query(rng), "k": 5}),
    "/answer, normal question (slow LLM)": lambda c, rng, qs: c.post(
        "/answer", json={"question": rng.choice(qs), "k": 5}
    ),
    "/answer, 999-letter word": lambda c, rng, _: c.post("/answer", json={"question": long_word(rng), "k": 5}),
}


def count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def run_hostile(
    base: str, send: Hostile, questions: list[str], deadline: float, timeout_s: float, seed: int,
    source: str | None = None,
) -> dict[str, int]:
    """Send ``send``'s requests back to back until ``deadline``; the count of each status (or exception)."""
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    with fresh_client(base, timeout_s, source) as client:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= deadline:
                break
            try:
                count(counts, str(send(client, rng, questions).status_code))
            except httpx.HTTPError as exc:
                count(counts, type(exc).__name__)
    return counts


def run_probe(base: str, path: str, params: dict[str, str], interval_s: float, seconds: float,
              timeout_s: float, result: RunResult, source: str | None = None) -> None:
    """GET ``path`` every ``interval_s`` for ``seconds``; latency from each request's scheduled send."""
    with fresh_client(base, timeout_s, source) as client:
        start = time.perf_counter()
        for i in range(min(int(seconds / interval_s), MAX_REQUESTS_PER_CLIENT)):
            scheduled = start + i * interval_s
            if time.perf_counter() - start > seconds + timeout_s:
                result.add_error("not sent (server stalled past the run)")
                continue
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            result.sent += 1
            try:
                status = client.get(path, params=params).status_code
            except httpx.HTTPError as exc:
                result.add_error(type(exc).__name__)
                continue
            if status == 200:
                result.ok += 1
                result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
            else:
                result.add_error(f"HTTP {status}")
        result.wall_s = time.perf_counter() - start


def warm_up(base: str, timeout_s: float) -> None:
    """Five normal searches, so idle memory is measured after the first requests' one-off work."""
    with fresh_client(base, timeout_s) as client:
        for _ in range(5):
            with contextlib.suppress(httpx.HTTPError):
                client.get("/search", params={"q": NORMAL_QUERY, "k": 5})


# --- one worker count ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one worker count measured."""

    workers: int
    search: RunResult
    health: RunResult
    hostile: dict[str, dict[str, int]]
    idle: dict[int, int]
    peak: MemoryPeak
    llm_calls: int = 0
    server_cpus: str = "not pinned"

    @property
    def idle_mb(self) -> float:
        return sum(self.idle.values()) / MB

    @property
    def peak_mb(self) -> float:
        return max(self.peak.total, sum(self.idle.values())) / MB

    @property
    def process_growth_mb(self) -> float:
        """The largest growth of one serving process over its own idle RSS."""
        return max((self.peak.by_pid.get(pid, size) - size for pid, size in self.idle.items()), default=0) / MB

    @property
    def new_processes(self) -> int:
        """Processes that appeared under load (a worker restarted, say)."""
        return len(set(self.peak.by_pid) - set(self.idle))

    def search_met(self) -> bool:
        return self.search.meets(SEARCH_P99_GOAL_MS)

    def health_met(self) -> bool:
        return self.health.meets(HEALTH_P99_GOAL_MS)

    def memory_met(self) -> bool:
        return self.process_growth_mb <= MEMORY_GOAL_MB


def load_under_attack(base: str, args: argparse.Namespace, workers: int, root: int) -> Outcome:
    """Idle memory, then ``--seconds`` of hostile and normal traffic with memory sampled throughout."""
    warm_up(base, args.timeout)
    idle = idle_rss(root)
    questions = load_questions(DEFAULT_QUESTIONS)
    search = RunResult(endpoint="search", rate=1 / NORMAL_INTERVAL_S, duration_s=args.seconds, workers=workers)
    health = RunResult(endpoint="healthz", rate=1 / HEALTH_INTERVAL_S, duration_s=args.seconds, workers=workers)
    hostile: dict[str, dict[str, int]] = {}
    peak, stop = MemoryPeak(), threading.Event()
    deadline = time.monotonic() + args.seconds

    # Hostile clients in processes of their own, as other machines would be: as threads of this process their
    # fast refusals would hold the GIL and delay the normal client's requests here, not in the server.
    forked = multiprocessing.get_context("fork")
    reports: multiprocessing.Queue[tuple[str, dict[str, int]]] = forked.Queue()

    def attack(name: str, send: Hostile, seed: int, source: str | None) -> None:
        reports.put((name, run_hostile(base, send, questions, deadline, args.timeout, seed, source)))

    attackers = [forked.Process(target=attack, args=(name, send, args.seed + i, source_address(args, 10 + i)),
                                daemon=True)
                 for i, (name, send) in enumerate(HOSTILE.items())]
    for attacker in attackers:  # forked before this process starts any thread
        attacker.start()
    threads = [
        threading.Thread(target=run_probe, args=(base, "/search", {"q": NORMAL_QUERY, "k": "5"}, NORMAL_INTERVAL_S,
                                                 args.seconds, args.timeout, search, source_address(args, 2))),
        threading.Thread(target=run_probe, args=(base, "/healthz", {}, HEALTH_INTERVAL_S, args.seconds,
                                                 args.timeout, health, source_address(args, 3))),
    ]
    sampler = threading.Thread(target=sample_until, args=(root, stop, peak))
    sampler.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # every loop ends by its clock or its count, each request by --timeout
    for _ in attackers:
        name, counts = reports.get(timeout=args.seconds + 2 * args.timeout + 60)
        hostile[name] = counts
    for attacker in attackers:
        attacker.join()
    stop.set()
    sampler.join()
    return Outcome(workers, search, health, hostile, idle, peak)


def measure(args: argparse.Namespace, workers: int) -> Outcome:
    """One worker count: the fake LLM, the server, the load, then both stopped."""
    llm = start_slow_llm(args.llm_sleep)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        process = start_server(server_args(args, llm.url), port, workers)
        try:
            asyncio.run(wait_healthy(base, 300, process))
            tail = keep_draining(process)
            asyncio.run(wait_all_workers(base, workers, 300))
            outcome = load_under_attack(base, args, workers, process.pid)
            if process.poll() is not None:
                raise SystemExit(f"error: the server exited ({process.returncode}):\n" + "\n".join(tail))
        finally:
            stop_server(process)
    finally:
        llm.close()
    outcome.llm_calls = llm.calls[0]
    outcome.server_cpus = taskset_cpus(process.args)
    print(progress(outcome), flush=True)
    return outcome


def taskset_cpus(command: object) -> str:
    """The CPUs ``taskset -c`` pinned the server to, or "not pinned"."""
    parts = [str(p) for p in command] if isinstance(command, list) else []
    return f"CPUs {parts[2]}" if parts[:2] == ["taskset", "-c"] else "not pinned"


# --- the report ------------------------------------------------------------------------------------------


def latency_cell(result: RunResult) -> str:
    """``p50 / p99``, with the failed requests when there were any."""
    cell = f"{result.percentile(50):.1f} / {result.percentile(99):.1f}"
    if result.errors:
        cell += f" ({result.error_count} failed: {', '.join(f'{k}: {v}' for k, v in result.errors.items())})"
    return cell


def merged(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """The hostile clients' status counts added up."""
    total: dict[str, int] = {}
    for by_status in counts.values():
        for key, n in by_status.items():
            total[key] = total.get(key, 0) + n
    return total


def counts_cell(counts: dict[str, int]) -> str:
    """``N (200: a, 503: b, ...)``."""
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    return f"{sum(counts.values())} ({shown})"


def yes_no(met: bool) -> str:
    return "met" if met else "**not met**"


def goal_cell(o: Outcome) -> str:
    return f"search {yes_no(o.search_met())}, healthz {yes_no(o.health_met())}, memory {yes_no(o.memory_met())}"


def table_row(o: Outcome) -> str:
    return (f"| {o.workers} | {latency_cell(o.search)} | {latency_cell(o.health)} | {counts_cell(merged(o.hostile))} "
            f"| {o.idle_mb:.0f} | {o.peak_mb:.0f} | {o.peak_mb - o.idle_mb:.0f} | {o.process_growth_mb:.0f} "
            f"| {goal_cell(o)} |")


def progress(o: Outcome) -> str:
    """One line for the terminal."""
    return (f"{o.workers} worker(s): /search p99 {o.search.percentile(99):.1f} ms, /healthz p99 "
            f"{o.health.percentile(99):.1f} ms, hostile {counts_cell(merged(o.hostile))}, RSS idle "
            f"{o.idle_mb:.0f} MB peak {o.peak_mb:.0f} MB, one process +{o.process_growth_mb:.0f} MB")


def reading(outcomes: list[Outcome]) -> str:
    """The one-line reading, from the numbers: each goal met or not, per worker count."""
    parts = [f"{o.workers} worker{'s' if o.workers > 1 else ''}: {goal_cell(o)}" for o in outcomes]
    everything = all(o.search_met() and o.health_met() and o.memory_met() for o in outcomes)
    return f"Reading: {'; '.join(parts)}. Issue 29's load goal is {'met' if everything else '**not met**'}."


def notes(outcomes: list[Outcome]) -> list[str]:
    """Per worker count: each hostile client's statuses, the LLM calls made, processes started under load."""
    lines = []
    for o in outcomes:
        clients = "; ".join(f"{name}: {counts_cell(c)}" for name, c in o.hostile.items())
        lines.append(f"- {o.workers} worker{'s' if o.workers > 1 else ''} (server on {o.server_cpus}): {clients}; "
                     f"the fake LLM received {o.llm_calls} calls; {len(o.idle)} serving process(es) at idle, "
                     f"{o.new_processes} new under load")
    return lines


def report(outcomes: list[Outcome], args: argparse.Namespace, argv: list[str], where: str) -> list[str]:
    """The lines of the fragment."""
    return [
        "## Hostile load: a normal client beside four worst-case clients (issue 29)",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {where}",
        f"- Command: `python benchmarks/hostile_load.py {' '.join(argv)}`",
        f"- Server: `sitetune serve --store {args.store} --threads 1 --workers N --llm-url http://127.0.0.1:PORT/v1 "
        f"--llm-model fake --llm-timeout {args.llm_timeout:g}{''.join(' ' + a for a in args.serve_arg)}`, "
        "pinned with taskset to one core per worker; the clients not pinned (the four hostile ones in processes of"
        " their own, the normal client and the health probe threads of the benchmark); loopback",
        f"- LLM: a fake chat-completions endpoint on 127.0.0.1 that sleeps {args.llm_sleep:g} s, then answers",
        f"- Load, {args.seconds:g} s per worker count, every request on a new connection: four hostile clients "
        "back to back (/search with a random 999-letter word; /search with a random 1,000-character query; "
        "/answer with a normal question, which waits on the LLM; /answer with a random 999-letter word), "
        f"timeout {args.timeout:g} s; a normal `/search?q={NORMAL_QUERY}` every 100 ms; `/healthz` every 200 ms. "
        "Latencies are from each request's scheduled send time. "
        + ("Every client connects from 127.0.0.1 (--one-address: one key for the fair model lock)"
           if args.one_address else "Each client connects from its own loopback address (127.0.0.N)")
        + ". A 422 for a long query is the expected outcome: over the server's --max-query-chars, refused "
        "before any model work",
        "- Memory: VmRSS of the server process and all its descendants, sampled every 0.5 s; idle is read after "
        "five warm-up searches. MB = 10^6 bytes",
        "",
        "| workers | normal /search p50 / p99 (ms) | /healthz p50 / p99 (ms) | hostile requests sent (by status) "
        "| idle RSS (MB) | peak RSS (MB) | peak − idle (MB) | largest one-process growth (MB) | goal |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
        *(table_row(o) for o in outcomes),
        "",
        f"Goal: normal /search p99 ≤ {SEARCH_P99_GOAL_MS:g} ms and /healthz p99 ≤ {HEALTH_P99_GOAL_MS:g} ms, "
        f"no failed normal request; no serving process more than {MEMORY_GOAL_MB:g} MB over its idle RSS "
        "(the RSS columns add up the whole tree, which counts memory-mapped store pages once per worker).",
        "",
        *notes(outcomes),
        "",
        reading(outcomes),
    ]


# --- main -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="Index store to serve.")
    parser.add_argument("--model", help="Query model (default: the store's).")
    parser.add_argument("--workers", type=int, action="append", help="Worker counts (repeatable; default 1 and 2).")
    parser.add_argument("--seconds", type=float, default=30.0, help="Seconds of load per worker count.")
    parser.add_argument("--llm-sleep", type=float, default=5.0, help="Seconds the fake LLM takes per answer.")
    parser.add_argument("--llm-timeout", type=float, default=30.0, help="The server's --llm-timeout.")
    parser.add_argument("--timeout", type=float, default=30.0, help="Client time limit per request (s).")
    parser.add_argument("--server-cpu", type=int, default=0, help="First CPU the server is pinned to.")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="An argument added to `sitetune serve` (repeatable; e.g. --serve-arg=--max-llm-calls "
                        "--serve-arg=1).")
    parser.add_argument("--one-address", action="store_true",
                        help="Send every client's requests from 127.0.0.1 (as through one proxy) instead of each "
                        "from its own loopback address.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="Markdown fragment to write.")
    args = parser.parse_args(argv)
    args.workers = args.workers or [1, 2]
    if min(args.workers) < 1 or args.seconds <= 0:
        parser.error("--workers takes counts of 1 or more, --seconds a positive number")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    where = describe_machine()
    outcomes = [measure(args, workers) for workers in args.workers]
    write_fragment(Path(args.out), report(outcomes, args, argv, where))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
