"""The main job end to end on the bundled sample site: crawl → train → index → serve, then a re-run reuses it all.

Training, exporting and indexing from scratch is the dearest thing the suite does, so one run (the module's
``main_job``) serves both tests: one checks how it ran and served, the other what it built and that a second
run reuses it. Everything the run printed or wrote that a test reads is captured before the fixture returns:
the second run, in the same folder, rewrites its files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from serve_helpers import free_port

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
#: The steps the first run trains: one, so its output says "1 step" (the singular is checked).
STEPS = 1
#: What the Hugging Face libraries printed into `make run` before: progress bars and notes of theirs.
LIBRARY_NOISE = ("Computing widget examples", "Writing model shards", "Loading weights", "loss_type",
                 "is_gradient_checkpointing")


@dataclass(frozen=True)
class MainJob:
    """What the module's run did.

    Attributes:
        workdir: Its folder (the reuse test runs the job there again).
        stdout: Everything it printed on stdout.
        stderr: Everything it printed on stderr (the progress bars).
        exit_code: Its exit status after SIGINT stopped the server.
        search: The served ``/search`` response to "IELTS score": status and JSON body.
        peak_rss_mb: The serving process's peak resident memory, read before it stopped.
        job: ``main_job.json`` as the run wrote it (what ``--json`` would have printed).
        crawl_report: ``corpus.crawl.json`` as the run wrote it.
    """

    workdir: Path
    stdout: str
    stderr: str
    exit_code: int
    search: tuple[int, dict[str, Any]]
    peak_rss_mb: float
    job: dict[str, Any]
    crawl_report: dict[str, Any]


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) / 1024


@pytest.fixture(scope="module")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> MainJob:
    """``sitetune run --train-steps 1 --port P`` from an empty folder, until it serves; then SIGINT."""
    folder = tmp_path_factory.mktemp("main-job")
    workdir, out_file, err_file = folder / "job", folder / "out.txt", folder / "err.txt"
    port = free_port()
    command = [sys.executable, "-m", "sitetune.cli.main", "run", "--workdir", str(workdir),
               "--train-steps", str(STEPS), "--port", str(port)]
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO, env={**os.environ, **OFFLINE})
    try:
        deadline = time.monotonic() + 900  # a "does not hang" bound for crawl, training and indexing
        while "http://" not in out_file.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"exit {process.poll()}; stdout:\n{out_file.read_text(errors='replace')}\n"
                                     f"stderr:\n{err_file.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        response = httpx.get(f"http://127.0.0.1:{port}/search", params={"q": "IELTS score"}, timeout=60)
        json_body = response.headers.get("content-type", "").startswith("application/json")
        search = (response.status_code, response.json() if json_body else {"text": response.text})
        peak = _peak_rss_mb(process.pid)
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return MainJob(
        workdir=workdir,
        stdout=out_file.read_text(errors="replace"),
        stderr=err_file.read_text(errors="replace"),
        exit_code=exit_code,
        search=search,
        peak_rss_mb=peak,
        job=json.loads((workdir / "main_job.json").read_text()),
        crawl_report=json.loads((workdir / "corpus.crawl.json").read_text()),
    )


def _run(workdir: Path, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "sitetune.cli.main", "run", "--workdir", str(workdir), "--train-steps", str(STEPS),
         "--json", *extra],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_main_job_builds_a_searchable_store_and_reuses_it(main_job: MainJob) -> None:
    from sitetune.config import EncoderConfig
    from sitetune.search import Searcher

    first = main_job.job  # main_job.json: the figures `--json` prints
    assert first["reranker"] is False  # opt-in (docs/rerank.md)
    # Training length is a step count (here set; by default planned from the corpus), never a time box.
    assert first["trained"] is True and first["train_steps"] == first["planned_steps"] == STEPS
    assert first["reused"] == 0 and first["embedded"] == first["unique_chunks"]
    model = Path(str(first["model"]))
    assert model == main_job.workdir / "model"
    assert json.loads((model / "sitetune.json").read_text())["recipe"] == "retrieval"

    with Searcher.open(str(first["store"]), EncoderConfig()) as searcher:
        hits = searcher.search("What IELTS score does the supply chain programme require?", k=3)
    assert hits and all(h.url.startswith("http") for h in hits)
    assert any("IELTS" in h.text for h in hits)

    # Asking for the reranker on the second run keeps the model and trains only its cross-encoder.
    second = _run(main_job.workdir, "--reranker", "--reranker-steps", "1")
    assert second["trained"] is False  # same corpus: the model is reused, not retrained
    assert second["embedded"] == 0 and second["reused"] == first["unique_chunks"]
    assert second["reranker"] is True
    summary = json.loads((model / "reranker" / "rerank_training.json").read_text())
    assert summary["steps"] == 1 and summary["bi_encoder"] == str(model)
    assert "## Reranker" in (model / "README.md").read_text()


@pytest.mark.slow
def test_run_serves_from_a_process_that_never_trained_and_prints_no_library_noise(main_job: MainJob) -> None:
    status, body = main_job.search
    assert status == 200 and body["results"], body
    # The serving process is the command's own, and its peak is a server's: training's activations at
    # batch 64 (over 3 GB here when it trained in this process) never entered it. A generous bound.
    assert main_job.peak_rss_mb < 1500
    assert main_job.exit_code == 0  # SIGINT stops the server cleanly
    out, err = main_job.stdout, main_job.stderr
    assert re.search(r"^ +trained 1 step in \d+\.\d min \(", out, re.MULTILINE), out
    assert "warning" not in err.lower(), err
    for noise in LIBRARY_NOISE:
        assert noise not in out + err, noise
    # The crawl bar's last counts are the report's (a duplicate page is moved to skipped before it closes),
    # and a crawl from an empty cache reuses nothing.
    report = main_job.crawl_report
    last = re.findall(r"pages=(\d+), skipped=(\d+)", err)[-1]
    assert (int(last[0]), int(last[1])) == (len(report["pages"]), report["skipped_total"])
    assert report["not_modified"] == 0
    indexing = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("indexing:")]
    assert len(indexing) == len(set(indexing)), indexing  # no line said twice
