"""The stream paths seen from Python (runtimes.STREAM_RUNTIMES): a worker
whose loads open the layers model as streams (node/lib/runtime/streaming.js),
so that its predict feeds each sequence to a batch of streams in chunks of
steps and returns what the whole model returns. verify runs a stream path
through this wrapper and judges it by the same rules as any other path."""

from __future__ import annotations

from pathlib import Path

# How verify feeds a stream path: chunks of random sizes (1 to a quarter of
# the steps; seeded, a new draw each call), so that a single step, several
# steps at once and the joins between chunks are all exercised.
VERIFY_FEED = {"chunks": "random", "seed": 0}


class StreamFeeding:
    """A worker (NodeWorker, or anything that proxies its request()) whose
    load() opens the model as streams fed by `feed` ({chunks: random|steps|
    sizes, seed, per_step, and the negative controls drop_state and
    stale_steps: node/lib/runtime/streaming.js}) stepped on `ops` (auto:
    node/lib/layers/stream.js's crossover; array; tensor); everything else is
    the worker's."""

    def __init__(self, worker, feed: dict | None = None, ops: str = "auto"):
        self.worker = worker
        self.feed = {**(VERIFY_FEED if feed is None else feed), "ops": ops}
        # batch size -> the ops its streams stepped on ('array', 'direct', 'tfjs'), as Node says
        self.ops_seen: dict[str, str] = {}

    def predict(self, handle, xs, names=None):
        outputs, result = self.worker.predict(handle, xs, names)
        self.ops_seen.update(result.get("stream_ops", {}))
        return outputs, result

    def load(self, model_dir, fmt: str | None) -> dict:
        # Absolute: the worker runs in the project root, not in our working directory.
        path = str(Path(model_dir).resolve())
        return self.worker.request("load", model_dir=path, format=fmt, stream=self.feed)[0]

    def __getattr__(self, name):  # predict, dispose, info, backend, ...
        return getattr(self.worker, name)
