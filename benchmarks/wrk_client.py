"""Closed-loop load with ``wrk`` (C, one thread): a generator light enough to share a 2-core machine.

load.py's asyncio generator needs most of a core at 100+ requests/s with a new connection per request, so on
a 2-core machine it takes the second worker's core. ``wrk`` (Debian/Ubuntu package ``wrk``) sends the same
requests for a few percent of a core. It is closed-loop: each of ``connections`` connections sends its next
request when the last one is answered, so latencies are service times under that concurrency (no queueing
behind a fixed arrival schedule); throughput is what the server sustained.

A Lua script cycles through the questions, sends ``Connection: close`` (a new connection per request, like
load.py's --workers runs: keep-alive connections stay with the worker that accepted them), counts the
answering worker from ``X-Sitetune-Worker`` and prints one JSON line at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from load_step import LoadStep

_SCRIPT = r"""
local counter = 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  requests_ = build_()
  counter = math.random(#requests_)
  answered = {}
end
function request()
  counter = counter % #requests_ + 1
  return requests_[counter]
end
function response(status, headers, body)
  local worker = headers["x-sitetune-worker"] or headers["X-Sitetune-Worker"] or "-"
  local key = (status == 200) and worker or ("HTTP " .. status)
  answered[key] = (answered[key] or 0) + 1
end
function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("answered")) do counts[k] = (counts[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(counts) do table.insert(parts, string.format('"%s": %d', k, v)) end
  io.write(string.format(
    'WRK-JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, '
    .. '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "answered": {%s}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    table.concat(parts, ", ")))
end
"""


@dataclass
class WrkResult(LoadStep):
    """One closed-loop step: ``connections`` connections for ``duration_s`` seconds."""

    endpoint: str
    connections: int
    workers: int
    sent: int
    ok: int
    wall_s: float
    percentiles_ms: dict[int, float]
    max_ms: float
    #: Answers per worker pid ("-" where the server sends no worker header).
    answered_by: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def percentile(self, q: int) -> float:
        return self.percentiles_ms[q]


def lua_requests(endpoint: str, questions: list[str], k: int = 5) -> str:
    """The Lua table of prepared requests, one per question."""
    items = []
    for question in questions:
        if endpoint == "search":
            path = "/search?" + urlencode({"q": question, "k": k})
            items.append(f'wrk.format("GET", {json.dumps(path)}, {{["Connection"] = "close"}})')
        else:
            body = json.dumps({"question": question, "k": k})
            items.append(
                f'wrk.format("POST", "/answer", {{["Connection"] = "close", ["Content-Type"] = '
                f'"application/json"}}, {json.dumps(body)})'
            )
    # A function, called from init: wrk.format needs the thread's wrk table, which exists from init on.
    return "function build_()\n  return {\n    " + ",\n    ".join(items) + "\n  }\nend\n"


def run_wrk(
    base: str,
    endpoint: str,
    questions: list[str],
    connections: int,
    duration_s: float,
    timeout_s: float,
    workers: int,
    cpu: int | None = None,
) -> WrkResult:
    """Run ``wrk`` once against ``base`` and read its JSON line.

    Raises:
        SystemExit: ``wrk`` is not installed or printed no result.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("error: --generator wrk needs the `wrk` program (apt-get install wrk)")
    script = lua_requests(endpoint, questions) + _SCRIPT
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = Path(handle.name)
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s:g}s", "-s", str(path), base]
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60, check=False).stdout
    finally:
        path.unlink(missing_ok=True)
    line = next((ln for ln in output.splitlines() if ln.startswith("WRK-JSON ")), None)
    if line is None:
        raise SystemExit(f"error: wrk printed no result:\n{output}")
    data = json.loads(line.removeprefix("WRK-JSON "))
    answered = {k: v for k, v in data["answered"].items() if not k.startswith("HTTP ")}
    errors = {k: v for k, v in data["answered"].items() if k.startswith("HTTP ")}
    errors |= {name: data[name] for name in ("connect", "read", "write", "timeout") if data[name]}
    return WrkResult(
        endpoint=endpoint,
        connections=connections,
        workers=workers,
        sent=data["requests"],
        ok=sum(answered.values()),
        wall_s=data["duration_us"] / 1e6,
        percentiles_ms={q: data[f"p{q}_us"] / 1000 for q in (50, 95, 99)},
        max_ms=data["max_us"] / 1000,
        answered_by=answered,
        errors=errors,
    )
