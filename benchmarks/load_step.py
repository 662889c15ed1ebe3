"""What one load step reports, whichever generator ran it (load.py's asyncio client or wrk)."""

from __future__ import annotations


class LoadStep:
    """Answered requests, errors and wall time of one step, and whether it met the latency goal.

    Subclasses (dataclasses) hold ``ok``, ``errors``, ``wall_s``, ``workers``, ``answered_by`` and
    define :meth:`percentile`.
    """

    ok: int
    errors: dict[str, int]
    wall_s: float
    workers: int
    answered_by: dict[str, int]

    def percentile(self, q: int) -> float:
        raise NotImplementedError

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def meets(self, p99_ms: float) -> bool:
        """The goal: every request answered, p99 within ``p99_ms``."""
        return self.error_count == 0 and self.ok > 0 and self.percentile(99) <= p99_ms

    def progress(self, step: str) -> str:
        """One line for the terminal: ``step`` (the rate or the connections) and what came back."""
        return (
            f"{self.workers} worker(s), {step}: ok {self.ok}, errors {self.errors}, {self.throughput:.1f} req/s, "
            f"p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms, "
            f"per worker {sorted(self.answered_by.values())}"
        )
