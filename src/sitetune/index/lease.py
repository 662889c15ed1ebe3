"""Reader leases: a process that reads a generation says so, and the writer's prune leaves that generation alone.

Layout, beside the generations (see :mod:`sitetune.index.store`)::

    STORE/
      leases/
        .lock                                  taken briefly by a reader taking a lease and by a prune
        gen-000003.pid-4711.8f2c1a.lease       {"pid": 4711, "generation": 3, "host": ..., "taken": ...}

A reader creates its lease file and holds an exclusive ``flock`` on it for as long as it reads the
generation. The lock, not the pid written inside, says whether the lease is live: the kernel releases it
when the reader exits or is killed, so a dead reader's lease is free to reclaim however it died, a
reused pid cannot keep a generation alive, and readers in other pid namespaces (containers over one
volume) are seen the same way. The pid is there for people (``ls leases/``) and for :func:`live_leases`.

Taking a lease and pruning serialise on ``leases/.lock``: a reader locks it, creates and locks its
lease, checks that the generation's folder still exists and unlocks; a prune locks it, lists live leases
and renames unleased generations out of the way before unlocking. So a prune either sees the lease or has
already moved the folder (and the reader is told it is gone); it never deletes a generation from under a
reader that holds a lease.

Leases need ``flock`` to work across the processes that share the store: local file systems do; on NFS
Linux maps it onto NFS byte-range locks (NFSv4), which hold across clients.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LEASE_DIR = "leases"
_GUARD = ".lock"
_LEASE_RE = re.compile(r"^gen-(\d{6})\.pid-(\d+)\.[0-9a-f]+\.lease$")


class GenerationGone(Exception):
    """The generation's folder was pruned before the lease could be taken (read ``CURRENT`` again)."""


@dataclass(frozen=True)
class LeaseInfo:
    """A live lease as a prune or an operator sees it.

    Attributes:
        generation: The generation it holds.
        pid: The reading process (in its own pid namespace).
        path: The lease file.
    """

    generation: int
    pid: int
    path: Path


class Lease:
    """One reader's hold on one generation; :meth:`release` (or process exit) lets a prune remove it.

    Build one with :func:`take_lease`.
    """

    def __init__(self, path: Path, generation: int, handle: IO[str]) -> None:
        self.path = path
        self.generation = generation
        self._handle: IO[str] | None = handle

    @property
    def held(self) -> bool:
        """Whether the lease is still held by this process."""
        return self._handle is not None

    def release(self) -> None:
        """Give the generation up: delete the lease file and drop its lock (idempotent, never raises)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            handle.close()  # closing drops the flock

    def __del__(self) -> None:  # an unreleased lease must not outlive its reader's objects
        self.release()


@contextlib.contextmanager
def _guard(root: Path) -> Iterator[Path]:
    """Hold ``leases/.lock`` (blocking: both sides keep it for milliseconds)."""
    folder = root / LEASE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / _GUARD, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def take_lease(root: str | Path, generation: int, generation_dir: str | Path) -> Lease:
    """Lease ``generation`` of the store at ``root`` for this process.

    Args:
        root: The store folder (the one holding ``CURRENT``).
        generation: The generation's number.
        generation_dir: Its folder, checked to still exist once the lease is held.

    Returns:
        The held lease; release it when the generation is no longer read.

    Raises:
        GenerationGone: A prune removed the generation first.
        OSError: The lease could not be written (a read-only store, for one).
    """
    root = Path(root)
    with _guard(root) as folder:
        path = folder / f"gen-{generation:06d}.pid-{os.getpid()}.{secrets.token_hex(3)}.lease"
        handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - held open for the lease's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            info = {"pid": os.getpid(), "generation": generation, "host": socket.gethostname(), "taken": time.time()}
            handle.write(json.dumps(info) + "\n")
            handle.flush()
        except OSError:
            handle.close()
            path.unlink(missing_ok=True)
            raise
        lease = Lease(path, generation, handle)
        if not Path(generation_dir).is_dir():
            lease.release()
            raise GenerationGone(f"{generation_dir}: the generation was pruned")
        return lease


def _is_live(path: Path) -> bool:
    """Whether some process holds the lease's lock; a free lease file is deleted (reclaimed)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        # Nobody holds it: its reader exited or died without releasing it.
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    finally:
        os.close(fd)


def _scan(folder: Path) -> list[LeaseInfo]:
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _LEASE_RE.match(path.name)
        if match and _is_live(path):
            found.append(LeaseInfo(int(match.group(1)), int(match.group(2)), path))
    return found


def live_leases(root: str | Path) -> list[LeaseInfo]:
    """The store's live leases; leases of readers that are gone are deleted on the way."""
    folder = Path(root) / LEASE_DIR
    if not folder.is_dir():
        return []
    with _guard(Path(root)) as guarded:
        return _scan(guarded)


@contextlib.contextmanager
def pruning(root: str | Path) -> Iterator[set[int]]:
    """Hold off new leases while a prune renames generations; yields the generations leased now.

    Dead readers' leases are reclaimed while listing. Keep the block short (renames, not deletes).
    """
    with _guard(Path(root)) as folder:
        yield {info.generation for info in _scan(folder)}
