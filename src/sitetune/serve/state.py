"""What the HTTP handlers read: one :class:`ServiceState` per app, built by ``create_app``.

``create_app`` stores it at ``app.state.service``; the handlers in :mod:`sitetune.serve.routes` reach it
through :func:`service`. Nothing in it is replaced while the app runs: the served generation changes inside
``follower`` and the counters inside their own objects.
"""

# No ``from __future__ import annotations``, like the rest of the serve package's FastAPI modules.

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sitetune.answer import LLMConfig
from sitetune.config import ServeConfig
from sitetune.serve.fairlock import FairLock
from sitetune.serve.metrics import ServeMetrics
from sitetune.serve.querylog import QueryLog
from sitetune.serve.ratelimit import RateLimiter
from sitetune.serve.refreshwatch import RefreshWatch
from sitetune.serve.reload import StoreFollower

T = TypeVar("T")


class Admission:
    """Admission control for model work: past ``max_in_flight`` a request gets an immediate 503.

    Refusing at once beats joining a queue the request would time out in (which also wastes the work done
    for it later). The counter needs no lock: :meth:`run` is a coroutine and reads and changes it only on
    the event loop (before and after the await), never from a threadpool thread, and a server runs each
    app (each worker's) on one loop. Keep it that way: counting from ``work`` would need a lock.

    Args:
        max_in_flight: Searches and answers admitted at once (``ServeConfig.max_in_flight``).
        inline: Run the work on the event loop instead of the threadpool (``create_app``'s
            ``inline_model_work``).
    """

    def __init__(self, max_in_flight: int, *, inline: bool) -> None:
        self.max_in_flight = max_in_flight
        self.inline = inline
        self.in_flight = 0

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` if there is room, counted while it runs.

        Args:
            work: The model work of one request (it takes the model lock itself).

        Returns:
            What ``work`` returns.

        Raises:
            StarletteHTTPException: 503 with ``Retry-After`` when ``max_in_flight`` requests are running.
        """
        if self.in_flight >= self.max_in_flight:
            raise StarletteHTTPException(
                503, "the server is busy: try again in a moment", headers={"Retry-After": "1"}
            )
        self.in_flight += 1
        try:
            if self.inline:
                return work()
            # Model work runs in the threadpool so the event loop keeps accepting and answering.
            return await run_in_threadpool(work)
        finally:
            self.in_flight -= 1


@dataclass(frozen=True, eq=False)
class ServiceState:
    """Everything the endpoints read, from the app's settings to its counters.

    Attributes:
        config: The server's settings (query limits among them).
        follower: Holds the served generation; every request reads ``follower.current`` once and uses that
            generation's searcher, answerer and pages.
        model_lock: Serialises model work (fast tokenizers are not safe to call from several threads at
            once, and on a CPU server encodes gain nothing from overlapping); waiters take turns by client.
        admission: The ``max_in_flight`` limit on searches and answers.
        llm: Generative mode for ``POST /answer``; ``None`` answers extractively.
        llm_calls: LLM answers wait on the network outside the model lock and outside ``max_in_flight``;
            at most ``max_llm_calls`` at once, acquired without blocking (on the loop), past that a 503.
        model_name: Shown by ``/healthz``.
        metrics: What ``/metrics`` exposes; ``None`` when metrics are off (no ``/metrics`` then).
        refreshes: The store's ``refresh.json`` when the server follows a store: ``/healthz`` shows the last
            refresh, ``/metrics`` counts each.
        query_log: Where questions and feedback are logged; ``None`` logs nothing.
        feedback_limit: ``POST /feedback``'s rate per client address.
    """

    config: ServeConfig
    follower: StoreFollower
    model_lock: FairLock
    admission: Admission
    llm: LLMConfig | None
    llm_calls: threading.BoundedSemaphore
    model_name: str | None
    metrics: ServeMetrics | None
    refreshes: RefreshWatch | None
    query_log: QueryLog | None
    feedback_limit: RateLimiter


def service(request: Request) -> ServiceState:
    """The state of the app serving ``request`` (``app.state.service``, set by ``create_app``)."""
    state: ServiceState = request.app.state.service
    return state
