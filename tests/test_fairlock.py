"""The fair model lock: clients take turns, exceptions release it, and under many threads every request runs once.

Deterministic: threads are ordered by waiting until the lock reports them queued (``FairLock.waiting``), never
by sleeping; the only time bounds are generous "does not hang" limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

import pytest

from sitetune.serve.fairlock import SERVER, FairLock, client_key

#: A bound for "does not hang"; every wait here ends in milliseconds when the lock works.
HANG_S = 30.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.001)


def queued(lock: FairLock, client: Hashable) -> int:
    return lock.waiting().get(client, 0)


def has_queued(lock: FairLock, client: Hashable, n: int) -> Callable[[], bool]:
    return lambda: queued(lock, client) == n


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(HANG_S)
        assert not thread.is_alive(), f"{thread.name} still waiting: the lock hangs"


def test_a_client_with_one_request_is_not_queued_behind_anothers_ten() -> None:
    lock = FairLock()
    order: list[str] = []
    release_first = threading.Event()

    def first() -> None:  # client a's request that holds the lock when the others arrive
        with lock.hold("a"):
            release_first.wait(HANG_S)
            order.append("a0")

    def request(client: str, name: str) -> None:
        with lock.hold(client):
            order.append(name)

    holder = threading.Thread(target=first)
    holder.start()
    wait_until(lock.locked, "a's first request holds the lock")
    threads = []
    for i in range(1, 11):  # a queues ten more, each once the previous one is queued
        threads.append(threading.Thread(target=request, args=("a", f"a{i}")))
        threads[-1].start()
        wait_until(has_queued(lock, "a", i), f"{i} of a's requests are queued")
    threads.append(threading.Thread(target=request, args=("b", "b")))
    threads[-1].start()
    wait_until(lambda: queued(lock, "b") == 1, "b's request is queued")
    release_first.set()
    join_all([holder, *threads])

    assert sorted(order) == sorted(["a0", *(f"a{i}" for i in range(1, 11)), "b"])
    assert order[0] == "a0"
    after_b_arrived = order[1:]
    # b waits for at most one of a's queued requests (here none: a just had its turn), not for all ten.
    assert after_b_arrived.index("b") <= 1
    assert order[-1].startswith("a") and not lock.locked() and lock.waiting() == {}


def test_turns_go_round_robin_between_clients_and_fifo_within_one() -> None:
    lock = FairLock()
    order: list[str] = []

    def request(client: str, name: str) -> None:
        with lock.hold(client):
            order.append(name)

    lock.acquire("holder")
    threads = []
    for name in ["a1", "a2", "a3", "b1", "b2", "c1"]:  # queued in this order, one at a time
        client = name[0]
        threads.append(threading.Thread(target=request, args=(client, name)))
        before = queued(lock, client)
        threads[-1].start()
        wait_until(has_queued(lock, client, before + 1), f"{name} is queued")
    lock.release()
    join_all(threads)
    assert order == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_an_exception_in_the_block_releases_the_lock() -> None:
    lock = FairLock()
    with pytest.raises(ValueError, match="boom"), lock.hold("a"):
        raise ValueError("boom")
    assert not lock.locked()

    # Also when others wait: the next waiter gets the lock.
    served = threading.Event()

    def waiter() -> None:
        with lock.hold("b"):
            served.set()

    thread = threading.Thread(target=waiter)
    with pytest.raises(RuntimeError, match="model failed"), lock.hold("a"):
        thread.start()
        wait_until(lambda: queued(lock, "b") == 1, "b is queued")
        raise RuntimeError("model failed")
    join_all([thread])
    assert served.is_set() and not lock.locked()

    with lock:  # the server's own work (warm-up) uses the plain form, under SERVER
        assert lock.locked()
        with pytest.raises(RuntimeError, match="not held"):
            FairLock().release()
    assert not lock.locked()


def test_a_wait_that_times_out_leaves_the_queue_clean() -> None:
    lock = FairLock()
    lock.acquire("a")
    assert lock.acquire("b", timeout=0.01) is False
    assert lock.waiting() == {}
    lock.release()
    assert not lock.locked()
    assert lock.acquire("b", timeout=0) is True  # free: taken at once
    lock.release()


def test_many_threads_many_clients_every_request_runs_once_and_alone() -> None:
    lock = FairLock()
    clients, threads_per_client, requests_per_thread = 6, 4, 50
    ran: list[tuple[int, int, int]] = []
    inside = [0]
    overlaps = [0]

    def worker(client: int, thread: int) -> None:
        for n in range(requests_per_thread):
            key: Hashable = SERVER if client == 0 else f"10.0.0.{client}"
            with lock.hold(key):
                inside[0] += 1
                if inside[0] != 1:
                    overlaps[0] += 1
                ran.append((client, thread, n))  # list.append is atomic; the count check is the lock's
                if n % 7 == 0:
                    time.sleep(0)  # let other threads run while the lock is held
                inside[0] -= 1

    threads = [threading.Thread(target=worker, args=(c, t)) for c in range(clients) for t in range(threads_per_client)]
    for thread in threads:
        thread.start()
    join_all(threads)
    expected = {
        (c, t, n) for c in range(clients) for t in range(threads_per_client) for n in range(requests_per_thread)
    }
    assert len(ran) == len(expected) and set(ran) == expected
    assert overlaps[0] == 0
    assert not lock.locked() and lock.waiting() == {}


def test_client_key_is_the_scope_clients_host() -> None:
    assert client_key({"client": ("203.0.113.7", 51234)}) == "203.0.113.7"
    assert client_key({"client": None}) == ""
    assert client_key({}) == ""
