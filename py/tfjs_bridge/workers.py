"""Running (subject, runtime) pairs on Node: one long-lived worker per
backend (a backend is one Node process), started once for all of its pairs.
A backend whose worker does not start is a skip for each of its pairs, not
a failure of the run: verify and bench both go through on_workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import NodeError
from .runtimes import Runtime
from .worker import NodeWorker

S = TypeVar("S")  # what runs on a path: a reference.Subject


def on_workers(
    pairs: Sequence[tuple[S, Runtime]],
    run: Callable[[NodeWorker, S, Runtime], None],
    unavailable: Callable[[S, Runtime, NodeError], None],
    timeout: float | None = None,
    finish: Callable[[NodeWorker], None] | None = None,
) -> dict[str, dict]:
    """run(worker, subject, runtime) for every pair, in order within a backend
    (backends in the order the pairs first name them); unavailable(subject,
    runtime, error) instead for each pair of a backend whose worker failed to
    start; finish(worker) after a backend's last pair. Returns each started
    backend's worker.info (its versions)."""
    info: dict[str, dict] = {}
    for backend in dict.fromkeys(rt.backend for _, rt in pairs):
        todo = [(s, rt) for s, rt in pairs if rt.backend == backend]
        try:
            worker = NodeWorker(backend, timeout=timeout)
        except NodeError as err:
            for subject, rt in todo:
                unavailable(subject, rt, err)
            continue
        with worker:
            info[backend] = worker.info
            for subject, rt in todo:
                run(worker, subject, rt)
            if finish is not None:
                finish(worker)
    return info
