"""Drive a long-lived Node process (node/worker.js) over its framed protocol.

A frame is a little-endian uint32 header length, a UTF-8 JSON header and the
raw bytes of the tensors it lists ({dtype, shape, nbytes}), one after another.
Every request has a deadline; if Node dies, hangs past it or answers with an
error, a NodeError carries the reason and the tail of Node's stderr."""

from __future__ import annotations

import collections
import json
import os
import select
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from ..core.errors import NodeError
from ..core.paths import NODE_DIR, PROJECT_ROOT
from .node_process import DEFAULT_TIMEOUT_S, node_env, node_executable

DTYPES = {"float32": np.float32, "int32": np.int32}
STDERR_LINES_KEPT = 200


def encode_frame(header: dict, arrays: list[np.ndarray] = ()) -> bytes:
    specs, payload = [], []
    for array in arrays:
        dtype = np.dtype(array.dtype).name
        if dtype not in DTYPES:
            raise NodeError(f"the worker takes {', '.join(DTYPES)} tensors, not {dtype}")
        data = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
        specs.append({"dtype": dtype, "shape": list(array.shape), "nbytes": len(data)})
        payload.append(data)
    head = json.dumps({**header, "tensors": specs}).encode()
    return struct.pack("<I", len(head)) + head + b"".join(payload)


class NodeWorker:
    """``with NodeWorker("cpu") as w: h = w.load(dir, "layers"); ys = w.predict(h, x)``."""

    def __init__(self, backend: str = "tensorflow", timeout: float | None = None):
        self.backend = backend
        self.timeout = DEFAULT_TIMEOUT_S if timeout is None else timeout
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._next_id = 1
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [node_executable(), str(NODE_DIR / "worker.js"), "--backend", backend],
            cwd=PROJECT_ROOT,
            env=node_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # Non-blocking input: a write takes what the pipe has room for, so a
        # busy or hung Node cannot hold Python past a request's deadline.
        os.set_blocking(self.proc.stdin.fileno(), False)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self.info = self.request("hello")[0]
        self.start_seconds = time.perf_counter() - started

    # -- plumbing ---------------------------------------------------------

    def _drain_stderr(self) -> None:
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self._stderr)

    def _fail(self, what: str) -> NodeError:
        self.proc.kill()
        self.proc.wait()
        self._stderr_thread.join(timeout=2)
        reason = next(
            (
                ln.strip()[6:].strip()
                for ln in reversed(self._stderr)
                if ln.strip().startswith("error:")
            ),
            None,
        )
        detail = f": {reason}" if reason else ""
        return NodeError(f"node worker ({self.backend}) {what}{detail}", self.stderr)

    def _write_all(self, data: bytes, deadline: float, limit: float) -> None:
        """Write a frame without blocking past the deadline (a busy Node reads nothing)."""
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"took no input for {limit:g} s")
            _, ready, _ = select.select([], [fd], [], left)
            if not ready:
                continue
            try:
                written = os.write(fd, view[: 1 << 16])
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise self._fail("closed its input") from None
            view = view[written:]

    def _read_exactly(self, n: int, deadline: float, limit: float) -> bytes:
        fd = self.proc.stdout.fileno()
        chunks, remaining = [], n
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"gave no answer within {limit:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                self.proc.wait()
                raise self._fail(f"exited (code {self.proc.returncode}) mid-request")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def request(self, op: str, arrays: list[np.ndarray] = (), timeout: float | None = None, **args):
        """Send one request; returns (result, [arrays])."""
        if self.proc.poll() is not None:
            raise self._fail(f"is not running (exit code {self.proc.returncode})")
        request_id = self._next_id
        self._next_id += 1
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        frame = encode_frame({"id": request_id, "op": op, **args}, arrays)
        self._write_all(frame, deadline, limit)
        (head_len,) = struct.unpack("<I", self._read_exactly(4, deadline, limit))
        header = json.loads(self._read_exactly(head_len, deadline, limit))
        arrays_out = []
        for spec in header.get("tensors", []):
            raw = self._read_exactly(spec["nbytes"], deadline, limit)
            dtype = np.dtype(DTYPES[spec["dtype"]]).newbyteorder("<")
            arrays_out.append(
                np.frombuffer(raw, dtype=dtype)
                .reshape(spec["shape"])
                .astype(dtype.newbyteorder("="))
            )
        if header.get("id") != request_id:
            raise self._fail(f"answered request {header.get('id')} instead of {request_id}")
        if not header.get("ok"):
            raise NodeError(f"node worker ({self.backend}): {header.get('error')}", self.stderr)
        return header.get("result"), arrays_out

    # -- operations -------------------------------------------------------

    def load(self, model_dir, fmt: str | None) -> dict:
        # Absolute: the worker runs in the project root, not in our working directory.
        return self.request("load", model_dir=str(Path(model_dir).resolve()), format=fmt)[0]

    def predict(
        self, handle: int, xs: np.ndarray | list[np.ndarray], names: list[str] | None = None
    ) -> tuple[list[np.ndarray], dict]:
        """The model's outputs for one input array, or several (one per input,
        named in the signature's order: the worker feeds them by name)."""
        arrays = [xs] if isinstance(xs, np.ndarray) else list(xs)
        extra = {"inputs": list(names)} if names is not None else {}
        result, outputs = self.request("predict", arrays, handle=handle, **extra)
        return outputs, result

    def memory(self) -> dict:
        return self.request("memory")[0]

    def dispose(self, handle: int) -> None:
        self.request("dispose", handle=handle)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr_thread.join(timeout=2)

    def __enter__(self) -> NodeWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
