"""What machine a benchmark ran on, for the header of every result fragment."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def describe_machine() -> str:
    """CPU model, logical CPUs, RAM, OS, Python, and the load average when the benchmark started.

    The load average is part of the description because this project's machines are shared: a figure
    taken under load is only comparable with figures from the same run.
    """
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average at start {load}")


def write_fragment(path: Path, lines: list[str]) -> None:
    """Write a result fragment (markdown lines, a blank line added at the end) and print it."""
    text = "\n".join([*lines, ""])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(text)


def run_sitetune(*args: str, threads: int | None = None) -> dict[str, Any]:
    """Run ``sitetune ARGS --json`` in a child process from the repository root and return its JSON.

    Args:
        args: The command and its options (``"train", "--corpus", ...``).
        threads: ``OMP_NUM_THREADS`` for the child (``None``: inherited).

    Exits the benchmark with the command's last stderr lines when it fails.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    print("$ sitetune", " ".join(args), flush=True)
    proc = subprocess.run([sys.executable, "-m", "sitetune.cli.main", *args, "--json"], capture_output=True,
                          text=True, cwd=REPO, env=env)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {proc.stderr[-3000:]}")
    out = proc.stdout
    start = 0 if out.startswith("{") else out.rindex("\n{") + 1  # the JSON after any progress lines
    return json.loads(out[start:])  # type: ignore[no-any-return]
