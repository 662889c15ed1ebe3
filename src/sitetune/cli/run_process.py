"""``sitetune run``'s preparation (crawl, train, index) in a child process, so that the server starts clean.

Training leaves torch's allocator pools, the trainer and the optimizer state in the process that ran it:
serving from that process held 3.0 GB on the sample site, against about 650 MB for a process that only
serves. So the main job crawls, trains and indexes in a child started with multiprocessing's ``spawn``
(a fresh interpreter that inherits nothing but its arguments), which sends back the
:class:`~sitetune.pipeline.MainJobResult` or its error and exits; the command's own process then serves.
The child also sets OpenMP's passive wait policy before torch loads
(:func:`sitetune.environment.prefer_passive_openmp`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from sitetune.errors import SitetuneError

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from sitetune.pipeline import MainJobConfig, MainJobResult

#: Exit status of a process stopped by Ctrl-C (128 + SIGINT), the shell's convention.
INTERRUPTED_EXIT = 130

#: Seconds to wait for the child after each signal sent to stop it: SIGTERM, then SIGKILL.
_STOP_WAIT_S = 10.0


class PreparationInterrupted(Exception):
    """Ctrl-C (or SIGINT to either process) stopped the preparation; the child has exited."""


def prepare_in_child(config: MainJobConfig, *, progress: bool, log: Callable[[str], object]) -> MainJobResult:
    """Run :func:`sitetune.pipeline.prepare` in a spawned child process and return its result.

    Args:
        config: The main job's config (sent to the child).
        progress: Show progress bars (the child writes them to the same terminal).
        log: Receives the child's step lines; it must be picklable (a module-level function), since the
            child calls it.

    Returns:
        What ``prepare`` returned in the child.

    Raises:
        SitetuneError: ``prepare`` failed (its message), raised an unexpected error (its type and message;
            the child printed the traceback), or the child died without an answer (its exit status).
        PreparationInterrupted: Ctrl-C stopped it; the child was waited for (and stopped if it did not
            stop by itself).
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, os.getpid(), config, progress, log),
                              name="sitetune-prepare")
    try:
        with _sigint_flag() as interrupted:
            # The child starts with Ctrl-C blocked (the mask survives exec) and unblocks it once its own code
            # runs: a Ctrl-C while the new interpreter imports would otherwise print a traceback from
            # multiprocessing's start-up code. Blocked, not ignored: one that comes meanwhile is kept pending,
            # here and in the child, and delivered when unblocked.
            with _sigint_blocked():
                process.start()
            sender.close()
            message = _wait_for(process, receiver, interrupted)
    finally:
        receiver.close()
    if message is None:
        code = process.exitcode
        if code in (INTERRUPTED_EXIT, -signal.SIGINT):
            raise PreparationInterrupted
        raise SitetuneError(f"the process preparing the job (crawl, training, indexing) {_exit_words(code)} "
                            "before it finished")
    kind, payload = message
    if kind == "ok":
        result: MainJobResult = payload
        return result
    if kind == "interrupted":
        raise PreparationInterrupted
    raise SitetuneError(payload)


#: Seconds between looks at the child and at the Ctrl-C flag while waiting.
_POLL_S = 0.2


def _wait_for(process: BaseProcess, receiver: Connection, interrupted: list[bool]) -> Any:
    """The child's message (None if it exited without one), once it has exited.

    Raises:
        PreparationInterrupted: Ctrl-C came (``interrupted`` set by the handler); the child was stopped.
    """
    message = None
    while True:
        if interrupted[0]:
            _stop(process)
            raise PreparationInterrupted
        if receiver.poll(_POLL_S):
            try:
                message = receiver.recv()
            except EOFError:  # the child exited without a word: killed, or interrupted
                message = None
            break
    while process.is_alive():
        if interrupted[0]:
            _stop(process)
            raise PreparationInterrupted
        process.join(_POLL_S)
    return message


def _exit_words(code: int | None) -> str:
    """How a process ended, in words: its exit status or the signal that killed it."""
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread for the block (children started in it inherit the mask)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _sigint_flag() -> Iterator[list[bool]]:
    """Ctrl-C sets a flag for the block instead of raising ``KeyboardInterrupt``.

    A ``KeyboardInterrupt`` that lands while Python runs an object's ``__del__`` is printed and dropped
    ("Exception ignored in ..."), so a Ctrl-C could be lost; a handler that only sets a flag always takes.
    """
    flag = [False]

    def handle(signum: int, frame: object) -> None:
        flag[0] = True

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(process: BaseProcess) -> None:
    """Stop a child after Ctrl-C: wait for it a moment, then send SIGTERM and SIGKILL until it exits.

    SIGTERM, not SIGINT: training stops on it at the end of its step, and unlike a ``KeyboardInterrupt``
    (dropped when it lands in a ``__del__``) it cannot be lost.
    """
    process.join(1.0)  # a terminal's Ctrl-C reached the child too; it is already on its way out
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not process.is_alive() or process.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        process.join(_STOP_WAIT_S)


def _die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` dies (Linux), so no orphan trains on."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc: Any = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _child(conn: Connection, parent: int, config: MainJobConfig, progress: bool,
           log: Callable[[str], object]) -> None:
    """The child's body: prepare and send ("ok", result), ("error", message) or ("interrupted", None)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _die_with(parent)
    from sitetune.environment import prefer_passive_openmp

    prefer_passive_openmp()  # before anything loads torch
    from sitetune.cli.common import as_flags
    from sitetune.pipeline import prepare

    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent for the start
        conn.send(("ok", prepare(config, progress=progress, log=log)))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent may forward a second Ctrl-C: once is enough
        conn.send(("interrupted", None))
        sys.exit(INTERRUPTED_EXIT)
    except SitetuneError as exc:
        conn.send(("error", as_flags(str(exc))))
        sys.exit(1)
    except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        conn.send(("error", as_flags(str(exc))))  # worded as the command's own errors (common.handle_errors)
        sys.exit(1)
    except OSError as exc:
        conn.send(("error", f"I/O error: {exc}"))
        sys.exit(1)
    except Exception as exc:  # a bug: its traceback is the user's best report, then one line from the parent
        traceback.print_exc()
        conn.send(("error", f"preparing the job failed: {type(exc).__name__}: {exc} (traceback above)"))
        sys.exit(1)
    finally:
        conn.close()
