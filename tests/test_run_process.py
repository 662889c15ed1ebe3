"""`sitetune run` (so `make run`): the preparation in a child process (interrupted, killed, failing), the crawl's
counts and the libraries' quiet block on their own. A whole first run, served, is tests/test_pipeline.py's."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}


def _start(tmp_path: Path, *flags: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sitetune.cli.main", "run", "--workdir", str(tmp_path / "job"), *flags]
    with open(tmp_path / "out.txt", "wb") as out, open(tmp_path / "err.txt", "wb") as err:
        return subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO, env={**os.environ, **OFFLINE})


def _wait_until(done: Callable[[], bool], process: subprocess.Popen[bytes], tmp_path: Path,
                timeout_s: float) -> None:
    """Poll ``done`` until it holds; fail (with the output so far) if the process exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"exit {process.poll()}; stdout:\n{_read(tmp_path, 'out.txt')}\n"
                                 f"stderr:\n{_read(tmp_path, 'err.txt')[-3000:]}")
        time.sleep(0.2)


def _read(tmp_path: Path, name: str) -> str:
    return (tmp_path / name).read_text(errors="replace")


def _preparing_child(pid: int) -> int | None:
    """The pid of ``pid``'s child that runs the preparation (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        with open(f"/proc/{child}/cmdline", "rb") as fh:
            cmdline = fh.read()
        if b"spawn_main" in cmdline:
            return int(child)
    return None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_while_preparing_stops_the_child_and_exits_130(tmp_path: Path) -> None:
    process = _start(tmp_path, "--train-steps", "1", "--no-serve")
    try:
        _wait_until(lambda: "[1/4]" in _read(tmp_path, "out.txt"), process, tmp_path, timeout_s=300)
        child = _preparing_child(process.pid)
        assert child is not None and child != process.pid  # the preparation runs in a process of its own
        process.send_signal(signal.SIGINT)  # to the command only, as `kill -INT` would: it stops the child
        assert process.wait(timeout=120) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert _gone(child)
    err = _read(tmp_path, "err.txt")
    assert "interrupted: stopped before serving" in err
    assert "Traceback" not in err, err


def test_a_preparation_that_dies_is_reported_with_a_nonzero_exit(tmp_path: Path) -> None:
    process = _start(tmp_path, "--train-steps", "1", "--no-serve")
    try:
        _wait_until(lambda: "[1/4]" in _read(tmp_path, "out.txt"), process, tmp_path, timeout_s=300)
        child = _preparing_child(process.pid)
        assert child is not None
        os.kill(child, signal.SIGKILL)
        assert process.wait(timeout=120) == 2
    finally:
        if process.poll() is None:
            process.kill()
    err = _read(tmp_path, "err.txt")
    assert "error: the process preparing the job (crawl, training, indexing) was killed by SIGKILL" in err


def test_an_error_in_the_child_reaches_the_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("url,title\nhttps://example.org/,x\n")
    out = subprocess.run([sys.executable, "-m", "sitetune.cli.main", "run", "--workdir", str(tmp_path / "job"),
                          "--corpus", str(bad), "--no-serve"], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, **OFFLINE}, timeout=300)
    assert out.returncode == 2
    assert "bad.csv, line 1, field 'page_name': missing column(s)" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_fresh_crawl_reuses_nothing_and_its_bar_ends_on_the_report_counts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sitetune.crawl import crawl_folder, sample_site_dir

    # The sample site links /apply.html, a redirect to a page the crawl also reaches directly, and has
    # /index.html, the same bytes as /: neither is a page taken from a cache.
    report = crawl_folder(sample_site_dir(), tmp_path / "c.jsonl", progress=True)
    assert report.not_modified == 0
    assert {s.reason for s in report.skipped} >= {"duplicate", "duplicate-content"}
    last = re.findall(r"pages=(\d+), skipped=(\d+)", capsys.readouterr().err)[-1]
    assert (int(last[0]), int(last[1])) == (len(report.pages), report.skipped_total)


@pytest.mark.slow
def test_quiet_model_libraries_silences_transformers_only_inside_the_block(
        capfd: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as hf_logging

    from sitetune.models import load_sentence_transformer, quiet_model_libraries

    model = load_sentence_transformer("base")[0].auto_model
    capfd.readouterr()
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_model_libraries():
            _ = model.is_gradient_checkpointing  # what tracing the model for OpenVINO reads
            _ = model.loss_function
        assert not caught and "loss_type" not in capfd.readouterr().err
        assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == (verbosity, bars)
        _ = model.is_gradient_checkpointing
    assert [w.category for w in caught] == [FutureWarning]  # outside the block the user's settings hold


def test_training_processes_prefer_passive_openmp_unless_told_otherwise() -> None:
    probe = ("import os, sys\n"
             "if sys.argv[1] == 'torch-first': import torch\n"
             "from sitetune.environment import prefer_passive_openmp\n"
             "print(prefer_passive_openmp(), os.environ.get('OMP_WAIT_POLICY'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}

    def run(mode: str, **extra: str) -> str:
        return subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True,
                              env={**env, **extra}).stdout.strip()

    assert run("plain") == "True PASSIVE"
    assert run("plain", OMP_WAIT_POLICY="ACTIVE") == "False ACTIVE"  # the user's choice wins
    assert run("torch-first") == "False None"  # too late once torch has loaded: nothing is changed
