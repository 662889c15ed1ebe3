"""``serve --refresh-every``: run ``sitetune refresh`` in a child process on a schedule, beside the server.

The refresh never runs in a request's path, nor in the server's process: a child process crawls and
indexes (its memory and CPU time are its own, and a crash in it cannot take the server down), and the
server switches to the generation it publishes the way it switches to any (:mod:`sitetune.serve.reload`,
``CURRENT`` polling). The child records its outcome in the store's ``refresh.json``, which ``/healthz`` and
``/metrics`` report (:mod:`sitetune.serve.refreshwatch`); a child that dies without recording one (killed,
out of memory) is recorded as a failure here. The child's progress lines go to the server's stderr.
"""

from __future__ import annotations

import datetime
import logging
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sitetune.index.refreshstate import read_state, record_attempt, refresh_lock, state_dir
from sitetune.index.store import StoreError

_LOG = logging.getLogger(__name__)
#: Seconds a child gets to stop after SIGTERM when the server stops, before it is killed.
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class RefreshSchedule:
    """When and how the server refreshes its store.

    Attributes:
        every_s: Seconds from the end of one refresh to the start of the next (the first starts this long
            after the server).
        command: The child's argv (``python -m sitetune.cli.main refresh SITE --store STORE ...``).
        store: The store it refreshes (where its ``refresh.json`` is read).
    """

    every_s: float
    command: tuple[str, ...]
    store: str


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class RefreshScheduler:
    """Runs :class:`RefreshSchedule` in a daemon thread; :meth:`start` and :meth:`stop` it.

    Args:
        schedule: What to run and how often.
    """

    def __init__(self, schedule: RefreshSchedule) -> None:
        self.schedule = schedule
        self.folder = state_dir(schedule.store)
        self.runs = 0
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the schedule (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sitetune-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the schedule, and a refresh under way (SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`)."""
        self._stop.set()
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
        if self._thread is not None:
            self._thread.join(STOP_GRACE_S + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.schedule.every_s):
            try:
                self.run_once()
            except Exception as exc:  # the schedule must outlive any one run
                _LOG.warning("scheduled refresh could not run: %s", exc)

    def run_once(self) -> int:
        """Run one refresh in a child process and wait for it; returns its exit code."""
        started, began = _now(), time.perf_counter()
        before = read_state(self.folder) or {}
        _LOG.info("scheduled refresh: starting %s", " ".join(self._shown(self.schedule.command)))
        with self._lock:
            if self._stop.is_set():
                return -1
            self._child = subprocess.Popen(self.schedule.command, stdin=subprocess.DEVNULL)
        code = self._child.wait()
        with self._lock:
            self._child = None
        self.runs += 1
        seconds = round(time.perf_counter() - began, 1)
        after = read_state(self.folder) or {}
        last = after.get("last") or {}
        recorded = last.get("run") is not None and last != (before.get("last") or {}) and not after.get("running")
        if code == 0:
            _LOG.info("scheduled refresh: done in %.1f s (generation %s)", seconds, last.get("generation"))
        elif recorded:
            _LOG.warning("scheduled refresh failed (exit %s): %s", code, last.get("error"))
        elif not self._stop.is_set():
            # Killed, or crashed before it could record anything: record it here, so /healthz shows it.
            run = int((after.get("running") or {}).get("run") or int(after.get("runs", 0)) + 1)
            error = f"the refresh process exited with code {code} without recording an outcome"
            try:
                with refresh_lock(self.folder):  # held: another refresh runs, and this one never started
                    record_attempt(self.folder, {"run": run, "started": started, "finished": _now(),
                                                 "seconds": seconds, "outcome": "failure", "stage": "unknown",
                                                 "error": error})
            except StoreError:
                error = "another refresh of the store was running, so this one did not start"
            _LOG.warning("scheduled refresh failed: %s", error)
        return code

    @staticmethod
    def _shown(command: Sequence[str]) -> list[str]:
        return list(command[command.index("refresh"):]) if "refresh" in command else list(command)
