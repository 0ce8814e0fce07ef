"""A worker whose loads open the layers model with its time axis freed
(node/lib/runtime/models.js freeTimeAxis): the same layers and weights, run
on the first k steps of sequences a model fixed to T steps would refuse.
verify's prefix check of an ill-conditioned model (parity/prefixes.py)."""

from __future__ import annotations

from pathlib import Path


class FreeTimeLoading:
    """A worker (NodeWorker, or anything that proxies its request()) whose
    load() frees the layers model's time axis; everything else is the worker's."""

    def __init__(self, worker):
        self.worker = worker

    def load(self, model_dir, fmt: str | None) -> dict:
        # Absolute: the worker runs in the project root, not in our working directory.
        path = str(Path(model_dir).resolve())
        return self.worker.request("load", model_dir=path, format=fmt, free_time=True)[0]

    def __getattr__(self, name):  # predict, dispose, info, backend, ...
        return getattr(self.worker, name)
