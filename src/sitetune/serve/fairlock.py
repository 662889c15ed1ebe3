"""A lock that takes turns between clients: many queued requests of one client never starve another's.

The server serialises model work (the tokenizer is not thread-safe, and on a CPU encodes gain nothing from
overlapping). With a plain lock, waiters are served in arrival order, so a client that keeps a dozen
requests queued makes everybody else's single request wait behind all of them. :class:`FairLock` keeps one
first-in-first-out queue per client and, each time the lock is released, hands it to the next client in
round-robin order. A request that arrives while other clients have requests queued therefore waits for at
most one turn of each of them, however many each has queued.

The client is whatever hashable key the caller passes; the server passes :func:`client_key` of the ASGI
scope (the client's IP address). Work the server does for itself (warming up a generation) uses the
plain ``with lock:`` form, under the key :data:`SERVER`, and takes its turns like any client.

Not re-entrant: a thread that holds the lock and asks for it again waits for ever, as with
:class:`threading.Lock`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any


class _Server:
    """The key of work the server does for itself: equal to no client address."""

    def __repr__(self) -> str:
        return "SERVER"


#: The key ``with lock:`` uses (work the server does for itself, not for a request).
SERVER: Hashable = _Server()


def client_key(scope: Mapping[str, Any]) -> str:
    """The key a request takes its turns under: the client's host as the ASGI scope gives it.

    Behind a reverse proxy that is the proxy's address, so every request shares one key (and the lock
    serves them in arrival order), unless uvicorn rewrites it from ``X-Forwarded-For``: it does for a
    proxy connecting from 127.0.0.1 or ``::1`` (``FORWARDED_ALLOW_IPS``). A scope without a client (a test
    transport) gives ``""``.
    """
    client = scope.get("client")
    return str(client[0]) if client else ""


class _Ticket:
    """One waiting request: set when the lock is handed to it."""

    __slots__ = ("client", "event", "granted")

    def __init__(self, client: Hashable) -> None:
        self.client = client
        self.granted = False
        self.event = threading.Event()


class FairLock:
    """A mutual-exclusion lock whose waiters are served round-robin by client, FIFO within a client.

    Thread-safe; every method may be called from any thread. :meth:`hold` is the usual way in
    (``with lock.hold(client):``); ``with lock:`` holds it as :data:`SERVER`.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # guards the fields below; held only for bookkeeping, never for work
        self._held = False
        self._holder: Hashable | None = None
        self._queues: dict[Hashable, deque[_Ticket]] = {}
        #: Clients with requests queued, in the order their turns come (each at most once).
        self._turns: deque[Hashable] = deque()

    def acquire(self, client: Hashable = SERVER, timeout: float | None = None) -> bool:
        """Wait for the lock in ``client``'s queue; True once held, False if ``timeout`` seconds passed first.

        Args:
            client: Whose turn this request waits for (see :func:`client_key`).
            timeout: Seconds to wait at most; ``None`` waits until the lock is handed over.
        """
        with self._mutex:
            if not self._held and not self._turns:
                self._held, self._holder = True, client
                return True
            ticket = _Ticket(client)
            queue = self._queues.get(client)
            if queue is None:
                queue = self._queues[client] = deque()
                self._turns.append(client)
            queue.append(ticket)
        try:
            handed = ticket.event.wait(timeout)
        except BaseException:  # interrupted while waiting: leave the queue, or pass on a lock handed over
            with self._mutex:
                granted = ticket.granted
                if not granted:
                    self._leave_queue(ticket)
            if granted:
                self.release()
            raise
        if handed:
            return True
        with self._mutex:  # timed out; the lock may have been handed over since, and then it is ours
            if ticket.granted:
                return True
            self._leave_queue(ticket)
            return False

    def release(self) -> None:
        """Hand the lock to the next client in turn (or leave it free when nobody waits).

        Raises:
            RuntimeError: The lock is not held.
        """
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of a FairLock that is not held")
            previous = self._holder
            if not self._turns:
                self._held, self._holder = False, None
                return
            # The client that just held the lock goes behind the others waiting: it joined the turns while
            # it held the lock, so without this a newcomer would wait for one more of its requests.
            if self._turns[0] == previous and len(self._turns) > 1:
                self._turns.rotate(-1)
            client = self._turns.popleft()
            queue = self._queues[client]
            ticket = queue.popleft()
            if queue:
                self._turns.append(client)  # its next request waits for everybody else's turn
            else:
                del self._queues[client]
            self._holder = client
            ticket.granted = True
            ticket.event.set()

    @contextmanager
    def hold(self, client: Hashable = SERVER) -> Iterator[None]:
        """Hold the lock for the ``with`` block, waiting in ``client``'s queue; released however it ends."""
        self.acquire(client)
        try:
            yield
        finally:
            self.release()

    def __enter__(self) -> None:
        self.acquire(SERVER)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def locked(self) -> bool:
        """Whether some request holds the lock now."""
        with self._mutex:
            return self._held

    def waiting(self) -> dict[Hashable, int]:
        """Requests queued now, per client (the holder not counted)."""
        with self._mutex:
            return {client: len(queue) for client, queue in self._queues.items()}

    def _leave_queue(self, ticket: _Ticket) -> None:
        """Take a ticket that was never granted out of its client's queue (``_mutex`` held)."""
        queue = self._queues.get(ticket.client)
        if queue is None or ticket not in queue:
            return
        queue.remove(ticket)
        if not queue:
            del self._queues[ticket.client]
            self._turns.remove(ticket.client)
