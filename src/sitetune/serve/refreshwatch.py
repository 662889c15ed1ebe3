"""What the server says about refreshes: read from the store's ``refresh.json``, whoever ran them.

``sitetune refresh`` (by hand, from a timer, or started by ``serve --refresh-every``) records every attempt
in the store's ``refresh.json`` (:mod:`sitetune.index.refreshstate`). :class:`RefreshWatch` reads it when
``/healthz`` or ``/metrics`` is asked (re-reading only when the file changed) and

- gives ``/healthz`` the last attempt (outcome, error, duration), the last success, and whether the model
  is stale (``model_stale``, ``corpus_changed_since_training``);
- records each attempt it has not seen in the metrics (``sitetune_refresh_total`` and friends, through
  :meth:`~sitetune.serve.metrics.ServeMetrics.record_refresh`). Attempts finished before the server
  started are history, not counted. With ``serve --workers N`` one worker records each attempt: the first
  to create its claim file in the workers' shared metrics folder.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
from pathlib import Path
from typing import Any

from sitetune.index.refreshstate import STATE_FILE, read_state, state_dir
from sitetune.serve.metrics import ServeMetrics


def _seconds(iso: object) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(iso)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RefreshWatch:
    """Follows ``refresh.json`` of one store.

    Args:
        store: The store served (a directory or a Milvus URI).
        metrics: Where attempts are recorded (``None``: health only).
    """

    def __init__(self, store: str | Path, metrics: ServeMetrics | None = None) -> None:
        self.folder = state_dir(store)
        self.metrics = metrics
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._state: dict[str, Any] | None = None
        self._load()
        self._seen = self._counts()  # attempts recorded before the server started are not counted

    def _counts(self) -> tuple[int, int]:
        state = self._state or {}
        return int(state.get("successes", 0) or 0), int(state.get("failures", 0) or 0)

    def _load(self) -> bool:
        """Re-read the file when it changed; True when it did."""
        try:
            stat = (self.folder / STATE_FILE).stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        self._state = read_state(self.folder) if stamp is not None else None
        return True

    def poll(self) -> dict[str, Any] | None:
        """Read the file if it changed, record attempts not seen yet; returns the state (``None``: none)."""
        with self._lock:
            if self._load() and self.metrics is not None:
                self._record()
            return self._state

    def _record(self) -> None:
        assert self.metrics is not None
        successes, failures = self._counts()
        new_ok, new_failed = max(0, successes - self._seen[0]), max(0, failures - self._seen[1])
        self._seen = (max(successes, self._seen[0]), max(failures, self._seen[1]))
        last = (self._state or {}).get("last") or {}
        if not (new_ok or new_failed) or not self._claim(last.get("run")):
            return
        succeeded = last.get("outcome") == "success"
        self.metrics.record_refresh(float(last.get("seconds") or 0.0), succeeded=succeeded)
        # Attempts finished between two reads: counted, their durations unknown.
        extra_ok, extra_failed = new_ok - (1 if succeeded else 0), new_failed - (0 if succeeded else 1)
        if extra_ok > 0:
            self.metrics.refreshes.labels("success").inc(extra_ok)
        if extra_failed > 0:
            self.metrics.refreshes.labels("failure").inc(extra_failed)
        finished = _seconds(last.get("finished"))
        if succeeded and finished is not None:
            self.metrics.refresh_last_success.set(finished)

    def _claim(self, run: object) -> bool:
        """Whether this process records attempt ``run`` (always, unless workers share a metrics folder)."""
        shared = self.metrics.multiprocess_dir if self.metrics is not None else None
        if not shared:
            return True
        try:
            fd = os.open(Path(shared) / f"refresh-run-{run}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        except OSError:
            return True
        os.close(fd)
        return True

    def health(self) -> dict[str, Any]:
        """``refresh``, ``model_stale`` and ``corpus_changed_since_training`` for ``/healthz``."""
        state = self.poll()
        if state is None:
            return {"refresh": None, "model_stale": None, "corpus_changed_since_training": None}
        last = state.get("last") or {}
        success = state.get("last_success") or {}
        running = state.get("running") or {}
        drift = state.get("drift") or {}
        refresh = {
            "last_attempt": last.get("finished") or last.get("started"),
            "outcome": last.get("outcome"),
            "error": last.get("error"),
            "stage": last.get("stage"),
            "seconds": last.get("seconds"),
            "generation": last.get("generation"),
            "last_success": success.get("finished"),
            "running": bool(running) and _alive(running.get("pid")),
            "successes": int(state.get("successes", 0) or 0),
            "failures": int(state.get("failures", 0) or 0),
        }
        changed = drift.get("changed")
        with contextlib.suppress(TypeError, ValueError):
            changed = float(changed) if changed is not None else None
        stale = drift.get("stale")
        return {
            "refresh": refresh,
            "model_stale": stale if isinstance(stale, bool) else None,
            "corpus_changed_since_training": changed if isinstance(changed, float) else None,
        }
