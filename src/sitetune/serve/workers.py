"""``sitetune serve --workers N``: N server processes answering on one listening socket.

How: uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``). The parent binds the socket once
and starts N *spawned* (not forked) children that inherit it; each child imports :func:`worker_app` by
name and calls it, so every worker opens the store and loads its own encoder from scratch (forking a
process that already holds torch, OpenVINO or tokenizer threads is not safe). The supervisor pings the
workers, replaces one that dies while serving, stops everything when a worker fails at startup, and on
SIGINT or SIGTERM stops every worker before it exits. That is why it was chosen over a hand-written
pre-fork: all of that already exists and is tested. Its one awkward part, that an app factory takes no
arguments, is met by passing the settings as JSON in an environment variable (``SITETUNE_SERVE_WORKER``),
validated in the child.

How connections reach workers: each worker searches on its event loop (extractive answers; LLM answers
use the threadpool), so a worker accepts a connection only when it is idle and the kernel hands the next
one to a worker that is. Measured on 2 cores, this took 2 workers from 190 to 335 searches/s.

What the workers share: an embedded store's ``vectors.npy`` and HNSW index are memory-mapped read-only
(:meth:`sitetune.index.store.EmbeddedStore.load_generation`, :meth:`sitetune.index.ann.AnnIndex.load`), so
their pages are in memory once, in the page cache, however many workers read them. Each worker holds its
own encoder, BM25 index, answer-sentence vectors (``--warm`` encodes them in every worker) and admission
count (``max_in_flight`` is per worker). A query log is shared safely: each line is written under a file
lock (:mod:`sitetune.serve.querylog`). Milvus server stores work unchanged (each worker is a client);
Milvus Lite (``milvus://PATH.db``) opens its file in one process only and is refused.

Where the workers run: with ``ServeConfig.pin_workers`` (the default) and at least as many CPUs as workers,
the supervisor splits its CPUs into one share per worker (:func:`cpu_shares`) and each worker, as it
starts, claims a free share by locking a file and pins all its threads to it. Measured on 2 cores: two
unpinned processes answered 143 requests/s together, the same two pinned one to a core 314, one pinned
process alone 157 (``benchmarks/history/load_workers.md``). The kernel releases a dead
worker's lock, so the worker the supervisor starts in its place takes over its share.
"""

# No ``from __future__ import annotations``: pydantic reads WorkerSettings' annotations at run time.

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from sitetune.answer.llm import LLMConfig
from sitetune.config import AnswerConfig, EncoderConfig, SearchConfig, ServeConfig
from sitetune.errors import InputError, SitetuneError

if TYPE_CHECKING:
    from fastapi import FastAPI

#: The environment variable that carries :class:`WorkerSettings` (JSON) from the parent to the workers.
SETTINGS_ENV = "SITETUNE_SERVE_WORKER"
#: Seconds a worker may take to answer the supervisor's ping (it answers from a thread, also while its
#: model loads). uvicorn's 5 s default is tight on a loaded 2-core machine, where a missed ping kills and
#: restarts a healthy worker; longer delays noticing a dead one (a worker that failed at startup
#: included: its ping waits this long before the supervisor looks at its exit code).
HEALTHCHECK_S = 10
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class WorkerSettings(BaseModel):
    """Everything a worker needs to build the same app as a single ``sitetune serve`` process.

    Attributes:
        store: The store to open.
        serve: Address, limits, CORS origins and the number of workers.
        encoder: Query encoder settings.
        model: Query model (default: the store's).
        answer: Extractive answer settings.
        llm: Generative answers; ``None`` answers extractively.
        search: Search settings.
        warm_answers: Encode every answer sentence before serving.
        query_log: The shared query log, or ``None``.
        parent_pid: The supervisor; a worker stops when it is gone.
        cpu_shares: The CPUs of each worker slot (empty: workers are not pinned).
        claims_dir: Where workers lock ``share-I.lock`` to claim slot I.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str
    serve: ServeConfig
    encoder: EncoderConfig
    model: str | None = None
    answer: AnswerConfig | None = None
    llm: LLMConfig | None = None
    search: SearchConfig | None = None
    warm_answers: bool = True
    query_log: str | None = None
    parent_pid: int | None = None
    cpu_shares: tuple[tuple[int, ...], ...] = ()
    claims_dir: str | None = None


#: The claimed share's open, locked file: held for the worker's whole life (the kernel unlocks it at exit).
_CLAIMED: list[int] = []


def cpu_shares(cpus: Iterable[int], workers: int) -> tuple[tuple[int, ...], ...]:
    """Split ``cpus`` into ``workers`` disjoint runs of neighbouring CPUs, as equal in size as they can be.

    Returns:
        One tuple of CPU numbers per worker, or ``()`` (do not pin) for one worker or fewer CPUs than
        workers, where any split would put two workers on one CPU anyway.
    """
    ordered = sorted(set(cpus))
    if workers < 2 or len(ordered) < workers:
        return ()
    size, extra = divmod(len(ordered), workers)
    shares, start = [], 0
    for index in range(workers):
        end = start + size + (1 if index < extra else 0)
        shares.append(tuple(ordered[start:end]))
        start = end
    return tuple(shares)


def _pin_to_free_share(settings: WorkerSettings) -> tuple[int, ...] | None:
    """Claim the first share no live worker holds and run every thread of this process on its CPUs."""
    if not settings.cpu_shares or settings.claims_dir is None:
        return None
    import fcntl

    for index, cpus in enumerate(settings.cpu_shares):
        fd = os.open(Path(settings.claims_dir) / f"share-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _CLAIMED.append(fd)
        for task in Path("/proc/self/task").iterdir():  # uvicorn's threads exist already; later ones inherit
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), cpus)
        return cpus
    return None  # every share is held: more live workers than shares (a replacement racing its predecessor)


def settings_from_env(environ: dict[str, str] | None = None) -> WorkerSettings:
    """The settings the parent put in ``SITETUNE_SERVE_WORKER``.

    Raises:
        InputError: The variable is unset or does not hold valid settings.
    """
    env = os.environ if environ is None else environ
    text = env.get(SETTINGS_ENV)
    if not text:
        raise InputError(
            f"${SETTINGS_ENV} is not set: workers are started by `sitetune serve --workers N`, not directly"
        )
    try:
        return WorkerSettings.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"${SETTINGS_ENV} holds invalid worker settings: {problems}") from None


def _stop_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to send this worker SIGTERM when its supervisor dies (even by SIGKILL): no orphans."""
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the supervisor died before the request above took effect
        raise InputError(f"the supervisor (pid {parent_pid}) is gone")


def _thread_lock_for_progress_bars() -> None:
    """Give tqdm a thread lock: its default, a multiprocessing semaphore, is reported as "leaked" at exit.

    The encoder creates tqdm bars (hidden) while serving; workers never share a terminal bar, so a lock
    between processes buys nothing, and the resource tracker's warning on every stop would be noise.
    """
    with contextlib.suppress(ImportError):
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())


def worker_app() -> "FastAPI":
    """The app factory each worker calls (``uvicorn ... --factory``): open the store, load the model.

    A worker that cannot start prints ``error: ...`` and exits with uvicorn's startup-failure code, which
    makes the supervisor stop instead of restarting it in a loop.
    """
    import atexit

    from uvicorn.config import STARTUP_FAILURE

    from sitetune.search import Searcher
    from sitetune.serve.app import create_app
    from sitetune.serve.logformat import say
    from sitetune.serve.querylog import QueryLog
    from sitetune.serve.reload import Follow, ask_supervisor, install_sighup, store_opener

    _thread_lock_for_progress_bars()
    # The supervisor forwards SIGHUP ("look at the store now"); until the follower handles it, it must not
    # stop this worker (the default action).
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        settings = settings_from_env()
        _stop_with_parent(settings.parent_pid)
        pinned = _pin_to_free_share(settings)  # before the encoder starts its threads: they inherit it
        questions = QueryLog(settings.query_log) if settings.query_log is not None else None
        searcher = Searcher.open(settings.store, settings.encoder, settings.model, settings.search)
        atexit.register(searcher.close)
        app = create_app(
            searcher,
            settings.serve,
            answer_config=settings.answer,
            llm=settings.llm,
            model_name=Path(searcher.model_path).name,
            warm_answers=settings.warm_answers,
            query_log=questions,
            # Extractive work takes milliseconds: done on the event loop, a busy worker stops accepting and
            # the kernel gives the next connection to an idle one. LLM answers wait seconds on the network,
            # so they stay in the threadpool.
            inline_model_work=settings.llm is None,
            follow=Follow(
                settings.store,
                store_opener(settings.store, settings.encoder, settings.model, settings.search),
                on_admin_reload=ask_supervisor(settings.parent_pid),  # the supervisor tells every worker
            ),
        )
        atexit.register(app.state.follower.close)
        install_sighup(app.state.follower)
    except (SitetuneError, OSError) as exc:
        say(f"error: worker {os.getpid()}: {exc}", error=True)
        sys.exit(STARTUP_FAILURE)
    where = f" on CPU {','.join(map(str, pinned))}" if pinned else ""
    say(f"worker {os.getpid()}: model loaded, serving{where}")
    return app


def check_workers(store: str | Path, workers: int) -> None:
    """Refuse a worker count or store that ``--workers`` cannot serve.

    Raises:
        InputError: ``workers`` is below 1, or several workers would open a Milvus Lite file.
    """
    if workers < 1:
        raise InputError(f"--workers must be 1 or more, got {workers}")
    if workers > 1 and str(store).startswith("milvus://"):
        raise InputError(
            "--workers needs an embedded store or a Milvus server (http://HOST:19530): "
            "Milvus Lite (milvus://PATH.db) can be opened by one process only"
        )


def run_workers(
    settings: WorkerSettings, *, access_log: bool = False, log: Callable[[str], object] = print
) -> None:
    """Serve with ``settings.serve.workers`` processes until SIGINT or SIGTERM stops the supervisor.

    Args:
        settings: What every worker serves (``parent_pid`` is filled in here).
        access_log: Log every request.
        log: Receives the line with the URL, printed as the workers start.

    Raises:
        InputError: See :func:`check_workers`.
        SitetuneError: A worker failed to start (its own message is printed above); the others were stopped.
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from sitetune.serve.connections import server_options
    from sitetune.serve.logformat import uvicorn_log_options
    from sitetune.serve.metrics import MULTIPROC_ENV, monitoring_line
    from sitetune.serve.reload import forwarding_supervisor

    workers = settings.serve.workers
    check_workers(settings.store, workers)
    serve = settings.serve
    pinnable = serve.pin_workers and hasattr(os, "sched_getaffinity")
    shares = cpu_shares(os.sched_getaffinity(0), workers) if pinnable else ()
    claims_dir = tempfile.mkdtemp(prefix="sitetune-workers-") if shares else None
    settings = settings.model_copy(update={"parent_pid": os.getpid(), "cpu_shares": shares, "claims_dir": claims_dir})
    config = uvicorn.Config(
        f"{__name__}:worker_app",
        factory=True,
        host=serve.host,
        port=serve.port,
        workers=workers,
        log_level="warning",
        access_log=access_log,
        timeout_worker_healthcheck=HEALTHCHECK_S,
        # Request-read deadline, keep-alive, connection cap and backlog. Unless --backlog says otherwise,
        # connections wait in the backlog while every worker is busy: about as many as the workers would admit.
        **server_options(serve, default_backlog=max(64, serve.max_in_flight * workers)),
        **uvicorn_log_options(serve.log_format),  # applied in each worker before it builds its app
    )
    previous = os.environ.get(SETTINGS_ENV)
    os.environ[SETTINGS_ENV] = settings.model_dump_json()  # the spawned workers inherit the environment
    sock = config.bind_socket()
    # Each worker keeps its metric values in files here (prometheus-client reads the variable when the
    # worker first imports it), and the worker answering a scrape sums them all; made fresh per run, so no
    # earlier run's counts leak in, and removed on exit.
    metrics_dir = tempfile.mkdtemp(prefix="sitetune-metrics-") if serve.metrics else None
    previous_metrics_dir = os.environ.get(MULTIPROC_ENV)
    if metrics_dir is not None:
        os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        # uvicorn's own, except that SIGHUP makes every worker look at the store instead of restarting it.
        supervisor = forwarding_supervisor(config, [sock])
        shown = f"[{serve.host}]" if ":" in serve.host else serve.host
        pinned = ", each on its own CPUs" if shares else ""
        log(f"sitetune serving {settings.store} at http://{shown}:{serve.port}/ with {workers} workers{pinned}, "
            "each loading its model (" + ("API docs /docs, " if serve.docs else "") + "OpenAPI /openapi.json)")
        if settings.query_log is not None:
            log(f"logging questions and feedback to {settings.query_log} (no IP addresses or cookies)")
        log(monitoring_line(serve))
        supervisor.run()
    finally:
        sock.close()
        if claims_dir is not None:
            shutil.rmtree(claims_dir, ignore_errors=True)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            if previous_metrics_dir is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous_metrics_dir
        if previous is None:
            os.environ.pop(SETTINGS_ENV, None)
        else:
            os.environ[SETTINGS_ENV] = previous
    # The supervisor stops (and joins) every worker as soon as one fails to start, so how many others got as
    # far as failing themselves is a race: the message names the failure, not a count.
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise SitetuneError(
            f"a worker failed to start (see its error above); all {workers} workers stopped"
        )
