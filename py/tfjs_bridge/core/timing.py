"""How every Python route times its calls, as node/lib's timeCalls does:
the first call apart (it pays for tracing and caches), `warmup` calls in
all, then at least `min_reps` and at most `max_reps` timed calls within
`budget_s`."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_calls(
    call: Callable[[], object],
    budget_s: float,
    warmup: int = 3,
    min_reps: int = 5,
    max_reps: int = 200,
    reports_ms: bool = False,
) -> tuple[list[float], float]:
    """(times of the timed calls in ms, the first call's ms). `reports_ms`:
    call() returns its own duration in ms (e.g. an interpreter's invoke
    alone), used instead of the time around it."""

    def _ms() -> float:
        started = time.perf_counter()
        own = call()
        return own if reports_ms else (time.perf_counter() - started) * 1000

    first = _ms()
    for _ in range(warmup - 1):
        call()
    times: list[float] = []
    until = time.perf_counter() + budget_s
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() < until):
        times.append(_ms())
    return times, first
