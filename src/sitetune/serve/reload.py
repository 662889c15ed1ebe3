"""A running server follows its store: a new generation is loaded off to the side, then swapped in at once.

What a request uses (the searcher, the answerer over it, the page list) is one :class:`Served` object.
Each request reads :attr:`StoreFollower.current` once and uses that object to the end, so it never mixes
two generations; a switch is one reference assignment, and requests already running finish on the old
object, whose store is closed (its reader lease released) when the last of them lets go of it.

When it looks: every ``ServeConfig.reload_poll_s`` seconds it reads the store's ``CURRENT`` pointer (a
small file; ``0`` turns polling off), at once on SIGHUP (:func:`install_sighup`) and on an authorised
``POST /admin/reload``. A generation that fails to load (a checksum mismatch, a missing model) leaves the
old one served and its error in ``/healthz``; it is tried again when ``CURRENT`` moves on, or on SIGHUP
or ``POST /admin/reload``.

With ``serve --workers N`` each worker follows the store itself; the supervisor forwards SIGHUP to every
worker (:func:`forwarding_supervisor`) instead of uvicorn's restart of them all, and a worker that is asked
through ``POST /admin/reload`` passes the request on to the supervisor the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitetune.answer import Answerer, LLMConfig, SearcherLike
from sitetune.config import AnswerConfig, EncoderConfig, SearchConfig
from sitetune.index import EmbeddedStore
from sitetune.index.milvus import MilvusStore, is_milvus_uri

if TYPE_CHECKING:
    from uvicorn import Config

#: The environment variable holding the token ``POST /admin/reload`` requires; unset or empty: no endpoint.
ADMIN_TOKEN_ENV = "SITETUNE_ADMIN_TOKEN"
#: Sections whose answer sentences are encoded per hold of the model lock while a new generation warms up,
#: so requests on the old generation wait for one batch at most.
_WARM_BATCH = 32
_LOG = logging.getLogger(__name__)

#: Opens generation ``int`` of the store, given the searcher now served (whose model it may reuse).
OpenGeneration = Callable[[int, SearcherLike], SearcherLike]


@dataclass(frozen=True)
class Served:
    """Everything a request reads, from one generation.

    Attributes:
        searcher: The opened store and model.
        answerer: Answers over ``searcher``.
        pages: Page names of the generation.
        known_pages: The same, for checking a ``page`` filter.
        generation: The generation's number (``None`` for a searcher that is no store's).
        committed: POSIX time its manifest was written, just before it was committed (``None``: unknown).
    """

    searcher: SearcherLike
    answerer: Answerer
    pages: list[str]
    known_pages: frozenset[str]
    generation: int | None
    committed: float | None


def prepare(
    searcher: SearcherLike,
    *,
    answer_config: AnswerConfig | None,
    llm: LLMConfig | None,
    warm: bool,
    model_lock: contextlib.AbstractContextManager[Any],
) -> Served:
    """Make a searcher ready to serve: the answerer over it, its pages, its answer sentences encoded.

    Args:
        searcher: An opened searcher.
        answer_config: Extractive answer settings.
        llm: Generative answers, or ``None``.
        warm: Encode every answer sentence of the store now (a batch at a time under ``model_lock``, so a
            generation warming up beside a served one holds up requests for one batch at most).
        model_lock: The server's lock around model work (a :class:`~sitetune.serve.fairlock.FairLock`,
            whose ``with`` form takes its turns as the server, beside the clients' requests).
    """
    answerer = Answerer(searcher, answer_config, llm)
    reader = getattr(searcher, "reader", None)
    if warm:
        speller = getattr(searcher, "speller", None)
        if speller is not None:  # its per-letter indexes, so no question's first typo pays for one
            with model_lock:
                speller.warm()
        chunks: Sequence[Any] = getattr(reader, "chunks", ())
        for start in range(0, len(chunks), _WARM_BATCH):
            with model_lock:
                answerer.warm(chunks[start : start + _WARM_BATCH])
    manifest = getattr(reader, "manifest", None)
    pages = list(searcher.pages)
    return Served(
        searcher=searcher,
        answerer=answerer,
        pages=pages,
        known_pages=frozenset(pages),
        generation=getattr(manifest, "generation", None),
        committed=manifest.created_seconds if manifest is not None else None,
    )


def pointer_store(store: str | Path) -> EmbeddedStore:
    """The folder whose ``CURRENT`` names the generation a store serves (a Milvus store's sidecar)."""
    uri = str(store)
    return MilvusStore(uri).sidecar if is_milvus_uri(uri) else EmbeddedStore(uri)


def store_opener(
    store: str | Path,
    encoder: EncoderConfig | None = None,
    model: str | Path | None = None,
    search: SearchConfig | None = None,
) -> OpenGeneration:
    """How a server opens a new generation of ``store``: the loaded model is reused when it built it too.

    Args:
        store: The store served.
        encoder: Query encoder settings (for a generation built with another model).
        model: The query model given to ``serve`` (default: each generation's own).
        search: Search settings.
    """
    pointer = pointer_store(store)

    def open_generation(generation: int, previous: SearcherLike) -> SearcherLike:
        from sitetune.search import Searcher

        wanted = pointer.read_manifest(generation).model_fingerprint
        old_reader = getattr(previous, "reader", None)
        same_model = old_reader is not None and old_reader.manifest.model_fingerprint == wanted
        if not same_model:  # re-indexed with another model: load it (a server given --model refuses it)
            return Searcher.open(store, encoder, model, search, generation=generation)
        new = Searcher.open(
            store, encoder, model, search,
            encoder=previous.encoder, reranker=getattr(previous, "reranker", None), generation=generation,
        )
        # Same model: sentence vectors already encoded stay valid (keyed by the sentence text).
        sentences = getattr(previous, "sentences", None)
        if sentences is not None:
            new.sentences = sentences
        return new

    return open_generation


@dataclass(frozen=True)
class Follow:
    """How a server follows its store (given to :func:`sitetune.serve.app.create_app`).

    Attributes:
        store: The store served.
        open_generation: Opens a given generation (see :func:`store_opener`).
        on_admin_reload: Called after an authorised ``POST /admin/reload`` (see :func:`ask_supervisor`).
    """

    store: str | Path
    open_generation: OpenGeneration
    on_admin_reload: Callable[[], None] | None = None


@dataclass(frozen=True)
class ReloadOutcome:
    """What one look at the store did.

    Attributes:
        generation: The generation served afterwards.
        switched: Whether a new generation was swapped in.
        error: Why the generation ``CURRENT`` names could not be served, if it could not.
    """

    generation: int | None
    switched: bool
    error: str | None


def _close_quietly(searcher: SearcherLike) -> None:
    close = getattr(searcher, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


class StoreFollower:
    """Holds the :class:`Served` generation and replaces it when the store's ``CURRENT`` moves.

    Args:
        served: The generation served first.
        store: The store (``None``: the server follows nothing; :meth:`reload` only reports).
        open_generation: Opens a given generation (see :func:`store_opener`).
        make_served: Turns an opened searcher into a :class:`Served` (see :func:`prepare`).
        poll_s: Seconds between looks at ``CURRENT``; ``0``: only on :meth:`request` and :meth:`reload`.
        on_admin_reload: Called after an authorised ``POST /admin/reload`` (a worker tells its supervisor).
        on_switch: Called with each new :class:`Served` right after it is swapped in.

    :meth:`start` runs the watching thread; :meth:`close` stops it and closes the served store.
    """

    def __init__(
        self,
        served: Served,
        *,
        store: str | Path | None = None,
        open_generation: OpenGeneration | None = None,
        make_served: Callable[[SearcherLike], Served] | None = None,
        poll_s: float = 0.0,
        on_admin_reload: Callable[[], None] | None = None,
        on_switch: Callable[[Served], None] | None = None,
    ) -> None:
        self.current = served
        self.on_switch = on_switch
        self.pointer = pointer_store(store) if store is not None else None
        self.open_generation = open_generation
        self.make_served = make_served
        self.poll_s = poll_s
        self.on_admin_reload = on_admin_reload
        #: Why the last attempt to load a new generation failed (cleared by a successful switch).
        self.last_error: str | None = None
        #: Generations swapped in since start.
        self.switches = 0
        self._failed: int | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def following(self) -> bool:
        """Whether this server can switch generations at all."""
        return self.pointer is not None and self.open_generation is not None and self.make_served is not None

    def start(self) -> None:
        """Start watching (a daemon thread); does nothing when not :attr:`following` or already started."""
        if not self.following or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="sitetune-store-follower", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask the watching thread to look at the store now (safe to call from a signal handler)."""
        self._wake.set()

    def close(self) -> None:
        """Stop watching and close the served store (releasing its reader lease)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._lock:
            _close_quietly(self.current.searcher)

    def _watch(self) -> None:
        while not self._stop.is_set():
            asked = self._wake.wait(self.poll_s if self.poll_s > 0 else None)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reload(retry_failed=asked)
            except Exception as exc:  # the watcher must survive anything one look raises
                _LOG.warning("store follower: %s", exc)

    def reload(self, *, retry_failed: bool = True) -> ReloadOutcome:
        """Look at ``CURRENT`` and switch to the generation it names if that is not the one served.

        The new generation is opened and made ready (searcher built, answer sentences encoded) while the
        old one keeps serving, then swapped in with one assignment. A failure keeps the old one.

        Args:
            retry_failed: Try again a generation that failed before (polls do not; SIGHUP and
                ``POST /admin/reload`` do).
        """
        with self._lock:
            served = self.current
            if not self.following:
                return ReloadOutcome(served.generation, False, None)
            assert self.pointer is not None and self.open_generation is not None and self.make_served is not None
            target = self.pointer.current()
            if target is None:
                self.last_error = f"{self.pointer.root}/CURRENT is missing or names no generation"
                return ReloadOutcome(served.generation, False, self.last_error)
            if target == served.generation or (target == self._failed and not retry_failed):
                return ReloadOutcome(served.generation, False, self.last_error)
            started = time.perf_counter()
            searcher: SearcherLike | None = None
            try:
                searcher = self.open_generation(target, served.searcher)
                fresh = self.make_served(searcher)
            except Exception as exc:  # any failure to load keeps the old generation serving
                if searcher is not None:
                    _close_quietly(searcher)
                self._failed = target
                self.last_error = f"generation {target} not loaded (still serving {served.generation}): {exc}"
                _LOG.warning("store follower: %s", self.last_error)
                return ReloadOutcome(served.generation, False, self.last_error)
            # The old store closes (and its lease goes) once no request holds it any more.
            weakref.finalize(served, _close_quietly, served.searcher)
            self.current = fresh  # the switch: one reference assignment
            del served
            self._failed = None
            self.last_error = None
            self.switches += 1
            if self.on_switch is not None:
                with contextlib.suppress(Exception):
                    self.on_switch(fresh)
            _LOG.info("store follower: now serving generation %s (loaded in %.2f s)", target,
                      time.perf_counter() - started)
            return ReloadOutcome(fresh.generation, True, None)

    def health(self) -> dict[str, Any]:
        """``generation``, ``generation_age_s`` and ``reload_error`` for ``/healthz``."""
        served = self.current
        age = None if served.committed is None else round(max(0.0, time.time() - served.committed), 1)
        return {"generation": served.generation, "generation_age_s": age, "reload_error": self.last_error}


def admin_token(environ: dict[str, str] | None = None) -> str | None:
    """The token ``POST /admin/reload`` requires (``$SITETUNE_ADMIN_TOKEN``); ``None`` when unset or empty."""
    value = (os.environ if environ is None else environ).get(ADMIN_TOKEN_ENV, "").strip()
    return value or None


def install_sighup(follower: StoreFollower) -> bool:
    """Make SIGHUP ask ``follower`` to look at the store now; returns False off the main thread."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGHUP, lambda _sig, _frame: follower.request())
    return True


def ask_supervisor(parent_pid: int | None) -> Callable[[], None] | None:
    """For a worker: a callback that sends SIGHUP to its supervisor, which forwards it to every worker."""
    if parent_pid is None or not hasattr(signal, "SIGHUP"):
        return None

    def notify() -> None:
        with contextlib.suppress(OSError):
            os.kill(parent_pid, signal.SIGHUP)

    return notify


def forwarding_supervisor(config: Config, sockets: list[Any]) -> Any:
    """The multi-process supervisor of uvicorn, with SIGHUP passed on to every worker instead of restarting them.

    uvicorn answers SIGHUP by replacing each worker (reloading its model from scratch); a worker that
    follows its store only needs to look at ``CURRENT``, which it does on SIGHUP.
    """
    from uvicorn.supervisors import Multiprocess

    class _Forwarding(Multiprocess):
        def handle_hup(self) -> None:
            for process in self.processes:
                pid = process.process.pid
                if pid is not None and process.process.is_alive():
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGHUP)

    return _Forwarding(config, sockets=sockets)
