"""``sitetune serve --workers N``: real processes on one port, the same answers as one process, no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from serve_helpers import free_port, session_store, start_serve, wait_healthy
from sitetune.cli.main import app
from sitetune.config import AnswerConfig, EncoderConfig, SearchConfig, ServeConfig
from sitetune.errors import InputError
from sitetune.serve.workers import SETTINGS_ENV, WorkerSettings, cpu_shares, settings_from_env

QUESTIONS = (
    "When is the application deadline?",
    "Can I study part-time?",
    "What do non-EU applicants need to apply?",
    "When are the open days?",
)


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _cpus(pid: int) -> set[int]:
    """The CPUs every thread of ``pid`` may run on (their union, from /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        listed = next(line.split(":", 1)[1].strip() for line in status.splitlines()
                      if line.startswith("Cpus_allowed_list"))
        for part in listed.split(","):
            low, _, high = part.partition("-")
            found |= set(range(int(low), int(high or low) + 1))
    return found


def _answering_workers(url: str, want: int, timeout_s: float = 60) -> set[int]:
    """Worker pids seen answering concurrent searches until ``want`` different ones have answered."""
    workers: set[int] = set()
    deadline = time.monotonic() + timeout_s
    with ThreadPoolExecutor(6) as pool:
        while len(workers) < want and time.monotonic() < deadline:
            responses = list(pool.map(
                lambda i: httpx.get(f"{url}/search", params={"q": f"deadline {i}"}, timeout=30), range(12)
            ))
            workers |= {int(r.headers["x-sitetune-worker"]) for r in responses if r.status_code == 200}
    return workers


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _same(response: httpx.Response) -> dict[str, object]:
    """The response body without what differs between two runs (timing, log ids)."""
    assert response.status_code == 200, response.text
    body = dict(response.json())
    body.pop("took_ms")
    body.pop("log_id", None)
    return body


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads worker processes from /proc")
def test_two_workers_share_one_port_answer_like_one_and_stop_together(
    cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    store = session_store(cbs_csv, tmp_path_factory)
    one_port, two_port = free_port(), free_port()
    query_log = tmp_path / "queries.jsonl"
    one = start_serve(store, one_port, tmp_path / "one.log")
    two = start_serve(store, two_port, tmp_path / "two.log", "--workers", "2", "--query-log", str(query_log))
    one_url, two_url = f"http://127.0.0.1:{one_port}", f"http://127.0.0.1:{two_port}"
    try:
        wait_healthy(one_url, one, tmp_path / "one.log")
        wait_healthy(two_url, two, tmp_path / "two.log")

        # Both workers answer on the one port: a busy worker accepts nothing (it searches on its event
        # loop), so concurrent requests reach both.
        workers = _answering_workers(two_url, 2)
        assert len(workers) == 2, workers
        assert workers <= _children(two.pid), "the answering processes are not the supervisor's workers"
        assert "x-sitetune-worker" not in httpx.get(f"{one_url}/healthz").headers  # one process: no header

        # The same results and answers as one process, whichever worker answers.
        for question in QUESTIONS:
            for k in (1, 5):
                params = {"q": question, "k": k}
                assert _same(httpx.get(f"{two_url}/search", params=params, timeout=30)) == _same(
                    httpx.get(f"{one_url}/search", params=params, timeout=30)
                )
            body = {"question": question, "k": 5}
            answer = httpx.post(f"{two_url}/answer", json=body, timeout=30)
            assert answer.json()["log_id"]
            assert _same(answer) == _same(httpx.post(f"{one_url}/answer", json=body, timeout=30))
        logged = [json.loads(line) for line in query_log.read_text(encoding="utf-8").splitlines()]
        assert [e["question"] for e in logged if e["type"] == "question"] == list(QUESTIONS)
        # The same health, but for the generation's age: a clock reading, a moment apart in the two requests.
        two_health, one_health = (httpx.get(f"{url}/healthz").json() for url in (two_url, one_url))
        assert abs(two_health.pop("generation_age_s") - one_health.pop("generation_age_s")) < 60
        assert two_health == one_health

        # With a CPU each, each worker runs on its own (every thread); with one CPU nobody is pinned.
        allowed = os.sched_getaffinity(two.pid)
        shares = {pid: _cpus(pid) for pid in workers}
        if len(allowed) >= 2:
            first, second = shares.values()
            assert first and second and not first & second and first | second <= allowed, shares
        else:
            assert all(cpus == allowed for cpus in shares.values()), shares

        # A worker that dies is replaced, and the replacement takes over the dead worker's CPUs.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = _answering_workers(two_url, 2, timeout_s=120) - {victim}
        assert len(replaced) == 2, replaced
        (successor,) = replaced - workers
        assert _cpus(successor) == shares[victim]
        workers = replaced

        # SIGTERM to the supervisor stops every process it started (workers, resource tracker).
        started = _children(two.pid)
        assert workers < started
        two.send_signal(signal.SIGTERM)
        assert two.wait(30) == 0
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in started if _alive(pid)], "workers outlived the supervisor"
        output = (tmp_path / "two.log").read_text()
        assert f"at http://127.0.0.1:{two_port}/ with 2 workers" in output
        for pid in workers:
            assert f"worker {pid}: model loaded, serving" in output
        if len(allowed) >= 2:
            assert "with 2 workers, each on its own CPUs" in output
        assert "Traceback" not in output and "leaked" not in output, output
    finally:
        for process in (one, two):
            if process.poll() is None:
                process.terminate()
                process.wait(30)


def test_cpu_shares_split_the_cpus_into_disjoint_neighbouring_runs() -> None:
    assert cpu_shares([1, 0], 2) == ((0,), (1,))
    assert cpu_shares(range(8), 3) == ((0, 1, 2), (3, 4, 5), (6, 7))
    assert cpu_shares([4, 5, 6, 7], 2) == ((4, 5), (6, 7))
    assert cpu_shares([0], 2) == ()  # fewer CPUs than workers: pinning would stack two on one CPU
    assert cpu_shares(range(4), 1) == ()  # one worker keeps every CPU


@pytest.mark.parametrize("value", ["0", "-1"])
def test_worker_counts_below_one_are_refused(tmp_path: Path, value: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--store", str(tmp_path), "--workers", value])
    assert result.exit_code == 2 and "--workers" in result.output


def test_several_workers_over_milvus_lite_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--store", f"milvus://{tmp_path}/s.db", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers needs an embedded store or a Milvus server" in result.output


def test_a_worker_that_cannot_start_stops_the_server_with_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    process = subprocess.run(
        [sys.executable, "-m", "sitetune.cli.main", "serve", "--store", str(missing), "--port", str(free_port()),
         "--workers", "2"],
        capture_output=True, text=True, timeout=90, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert process.returncode == 2
    assert f"no index at {missing}" in process.stderr
    assert "error: a worker failed to start (see its error above); all 2 workers stopped" in process.stderr


def test_worker_settings_travel_as_validated_json() -> None:
    settings = WorkerSettings(
        store="runs/store",
        serve=ServeConfig(port=8123, max_in_flight=3, cors_origins=("https://a.example",), workers=2),
        encoder=EncoderConfig(threads=1),
        answer=AnswerConfig(min_score=0.5),
        search=SearchConfig(rerank=False),
        query_log="q.jsonl",
        parent_pid=1,
    )
    assert settings_from_env({SETTINGS_ENV: settings.model_dump_json()}) == settings
    with pytest.raises(InputError, match=r"SITETUNE_SERVE_WORKER is not set"):
        settings_from_env({})
    bad = json.loads(settings.model_dump_json())
    bad["serve"]["max_in_flight"] = "many"
    with pytest.raises(InputError, match=r"invalid worker settings: serve\.max_in_flight"):
        settings_from_env({SETTINGS_ENV: json.dumps(bad)})
