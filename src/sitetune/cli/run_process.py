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

#: Seconds to wait for the child after each signal sent to stop it: SIGINT, then SIGTERM, then SIGKILL.
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
    # The child starts with Ctrl-C ignored and takes it back once its code runs: a Ctrl-C while the new
    # interpreter imports would otherwise print a traceback from multiprocessing's start-up code.
    with _sigint_ignored():
        process.start()
    sender.close()
    try:
        try:
            message = receiver.recv()
        except EOFError:  # the child exited without a word: killed, or interrupted
            message = None
        process.join()
    except KeyboardInterrupt:
        _stop(process)
        raise PreparationInterrupted from None
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
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this process for the block (children started in it inherit that)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(process: BaseProcess) -> None:
    """Stop a child after Ctrl-C: wait for it a moment, then send SIGINT, SIGTERM and SIGKILL until it exits."""
    process.join(1.0)  # a terminal's Ctrl-C reached the child too; it is already on its way out
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
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
