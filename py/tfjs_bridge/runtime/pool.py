"""Running (subject, runtime) pairs on Node: one long-lived worker per
backend (a backend is one Node process), started once for all of its pairs.
A backend whose worker does not start is a skip for each of its pairs, not
a failure of the run: verify and bench both go through on_workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..core.errors import NodeError
from .runtimes import Runtime
from .tflite_worker import TfliteWorker
from .worker_process import NodeWorker

S = TypeVar("S")  # what runs on a path: a reference.Subject


def start_worker(backend: str, timeout: float | None = None):
    """A Node worker for a backend, or, for python-tflite, the in-process
    TFLite interpreter that answers as one (tflite_worker.py)."""
    if backend == TfliteWorker.backend:
        return TfliteWorker(timeout)
    return NodeWorker(backend, timeout=timeout)


class RetainingWorker:
    """A worker whose loaded models stay loaded until close(): a second load
    of the same folder and format returns the first load's answer (handle,
    load_ms, and the first call's time once a path has made one), and
    dispose() waits for close(). A model is then loaded, and XLA compiled,
    once for verify and timing both."""

    def __init__(self, worker: NodeWorker):
        self.worker = worker
        self._loaded: dict[tuple[str, str | None], dict] = {}

    def load(self, model_dir, fmt: str | None) -> dict:
        key = (str(Path(model_dir).resolve()), fmt)
        if key not in self._loaded:
            self._loaded[key] = self.worker.load(model_dir, fmt)
        return self._loaded[key]

    def dispose(self, handle: int) -> None:
        """Kept loaded for the next caller; close() disposes."""

    def close(self) -> None:
        self.worker.close()

    def __getattr__(self, name):  # request, predict, memory, info, backend, ...
        return getattr(self.worker, name)


class SharedWorkers:
    """One long-lived RetainingWorker per backend, shared by several
    on_workers calls (convert's check: verify, then timing on the same loads).
    A backend that failed to start fails the same way for every caller."""

    def __init__(self, timeout: float | None = None):
        self.timeout = timeout
        self._workers: dict[str, RetainingWorker] = {}
        self._failed: dict[str, NodeError] = {}

    def get(self, backend: str) -> RetainingWorker:
        if backend in self._failed:
            raise self._failed[backend]
        if backend not in self._workers:
            try:
                self._workers[backend] = RetainingWorker(start_worker(backend, self.timeout))
            except NodeError as err:
                self._failed[backend] = err
                raise
        return self._workers[backend]

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()

    def __enter__(self) -> SharedWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def on_workers(
    pairs: Sequence[tuple[S, Runtime]],
    run: Callable[[NodeWorker, S, Runtime], None],
    unavailable: Callable[[S, Runtime, NodeError], None],
    timeout: float | None = None,
    finish: Callable[[NodeWorker], None] | None = None,
    shared: SharedWorkers | None = None,
) -> dict[str, dict]:
    """run(worker, subject, runtime) for every pair, in order within a backend
    (backends in the order the pairs first name them); unavailable(subject,
    runtime, error) instead for each pair of a backend whose worker failed to
    start; finish(worker) after a backend's last pair. Workers are started and
    closed here, or taken from `shared` (which closes them). Returns each
    started backend's worker.info (its versions)."""
    info: dict[str, dict] = {}
    for backend in dict.fromkeys(rt.backend for _, rt in pairs):
        todo = [(s, rt) for s, rt in pairs if rt.backend == backend]
        try:
            worker = shared.get(backend) if shared else start_worker(backend, timeout)
        except NodeError as err:
            for subject, rt in todo:
                unavailable(subject, rt, err)
            continue
        with nullcontext(worker) if shared else worker:
            info[backend] = worker.info
            for subject, rt in todo:
                run(worker, subject, rt)
            if finish is not None:
                finish(worker)
    return info


@dataclass
class PathRun:
    """What one format of a model folder computed on one worker."""

    outputs: list[np.ndarray]  # each output, every sample (batches joined)
    singles: list[np.ndarray]  # each output for the first samples, sent one at a time
    output_names: list[str]  # as Node names them
    load_ms: float
    predict_ms: float


def run_on_path(
    worker: NodeWorker,
    model_dir: Path,
    fmt: str,
    xs: list[np.ndarray],
    input_names: list[str],
    chunk: int,
    one_by_one: int,
    advance: Callable[[], None],
) -> PathRun:
    """Loads model_dir's `fmt` on the worker, predicts xs `chunk` samples at a
    time (advance() after each), then the first `one_by_one` samples alone (a
    batch of one can take another code path: the fast RNN loop on the pure-JS
    and WASM backends), and disposes it. A NodeError is the caller's."""
    n = len(xs[0])
    loaded = worker.load(model_dir, fmt)
    parts, predict_ms = [], 0.0
    for i in range(0, n, chunk):
        ys, timing = worker.predict(loaded["handle"], [x[i : i + chunk] for x in xs], input_names)
        parts.append(ys)
        predict_ms += timing["ms"]
        # a retained load (RetainingWorker) keeps it: later timing sees warm kernels
        loaded.setdefault("first_call_ms", timing["ms"])
        advance()
    singles = [
        worker.predict(loaded["handle"], [x[i : i + 1] for x in xs], input_names)[0]
        for i in range(min(one_by_one, n))
    ]
    worker.dispose(loaded["handle"])
    return PathRun(
        _joined(parts), _joined(singles), loaded["outputs"], loaded["load_ms"], predict_ms
    )


def _joined(calls: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Each output's parts from several predict calls, joined along the batch."""
    return [np.concatenate(ys) for ys in zip(*calls, strict=True)]
