"""Signals cannot corrupt the service (issue #15, item 4). oneDNN's JIT sgemm
(issue #4845, in the TensorFlow tfjs-node links) points the stack pointer into
the heap while it runs, so a handled signal that lands on that thread corrupts
the heap (../shared/PITFALLS.md, "Signals and oneDNN's sgemm"). The test model
is a GRU(256): every step's product has an inner dimension of 256, past the
sgemm kernels' thresholds on AVX2 (K > 252) and AVX-512 (about K > 84).

The control comes first: the same storm, under the same load, against a naive
single-process server (tests/fixtures/naive_server.js: fastify, tfjs-node and
the signal handlers in one process) must crash, or the service's test proves
nothing. Measured on this machine (AMD EPYC, AVX-512, 2 cores), 8 clients,
bodies of 1, 4 and 8 samples, SIGUSR2/SIGHUP every ~1 ms: 10 of 10 runs
aborted ("corrupted size vs. prev_size", "free(): invalid next size",
SIGSEGV), 0.05-0.17 s into the storm; the load alone, 15 s, 0 of 10."""

import os
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from serve_storm import (
    NAIVE_SERVER,
    build_k256_model,
    k256_bodies,
    load,
    start_server,
    storm_under_load,
)

# Requests of 1, 4 and 8 samples: the fast loop's [B, 256] x [256, 768] runs on
# oneDNN's gemm_api (sgemm) at each (B = 1 too, though alone it did not crash
# here: 0 of 3 runs of 15 s).
BATCHES = (1, 4, 8)
CLIENTS = 8
STORM_SECONDS = 15  # the control crashed within 0.2 s in every measured run


@pytest.fixture(scope="module")
def k256_model(node_runtime, tmp_path_factory):
    """A model folder (layers, graph, SavedModels) of Input(10, 8) -> GRU(256)
    -> Dense(10, softmax), random weights, served under the name "k256"."""
    return build_k256_model(tmp_path_factory.mktemp("k256"), sys.executable)


@pytest.fixture
def k256_bodies_json():
    """{"instances": ...} bodies of 1, 4 and 8 samples for the k256 model."""
    return k256_bodies(BATCHES)


def test_naive_server_crashes_under_signal_storm(k256_model, k256_bodies_json, tmp_path):
    server = start_server(
        ["node", str(NAIVE_SERVER), "--model", str(k256_model), "--name", "k256", "--port", "0"],
        tmp_path / "naive.stderr",
    )
    try:
        url = f"{server.url}/v1/models/k256:predict"
        # The load alone harms nothing: the crash below is the signals' doing.
        calm = load(url, k256_bodies_json, CLIENTS, seconds=3)
        assert server.proc.poll() is None, server.stderr()
        assert calm.failed == 0 and calm.wrong == 0 and calm.ok > 0, calm

        run = storm_under_load(
            server.proc, url, k256_bodies_json, CLIENTS, STORM_SECONDS, stderr=server.stderr
        )
        assert run.crash, (
            f"the naive server survived {run.signals_sent} signals under load "
            f"({run.load}): the storm test cannot fail, so it proves nothing"
        )
        assert run.load.failed > 0  # the clients saw it die
    finally:
        server.stop()


SERVICE = NAIVE_SERVER.parents[2] / "node" / "serve.js"
# Every signal the service handles: shutdown aside, all of them.
SERVICE_SIGNALS = (signal.SIGUSR2, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD)


def _children(pid):
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _metric(url, name):
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_service_survives_signal_storm(k256_model, k256_bodies_json, tmp_path):
    server = start_server(
        ["node", str(SERVICE), "--model", f"k256={k256_model}", "--port", "0"],
        tmp_path / "service.stderr",
    )
    try:
        workers = _children(server.proc.pid)
        url = f"{server.url}/v1/models/k256:predict"
        run = storm_under_load(
            server.proc,
            url,
            k256_bodies_json,
            CLIENTS,
            STORM_SECONDS,
            signals=SERVICE_SIGNALS,
            stderr=server.stderr,
        )
        assert run.crash is None and server.proc.poll() is None, server.stderr()
        assert run.load.failed == 0 and run.load.wrong == 0, run.load
        assert run.load.ok > 100, run.load
        # Every signal was handled (none lost to a dead process), no worker died.
        assert _metric(server.url, "tfjs_bridge_signals_total") >= run.signals_sent * 0.5
        assert _metric(server.url, "tfjs_bridge_worker_restarts_total") == 0
        assert _children(server.proc.pid) == workers
    finally:
        server.stop()


def test_the_process_that_handles_signals_runs_no_tensorflow(k256_model, tmp_path):
    """The design the storm test checks: TensorFlow only in the workers, each
    in a session of its own, which no group signal reaches."""
    server = start_server(
        ["node", str(SERVICE), "--model", str(k256_model), "--port", "0", "--workers", "2"],
        tmp_path / "service.stderr",
    )
    try:
        main = server.proc.pid
        assert "libtensorflow" not in Path(f"/proc/{main}/maps").read_text()
        workers = _children(main)
        assert len(workers) == 2
        for pid in workers:
            assert "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()
            assert os.getsid(pid) == pid != os.getsid(main)
    finally:
        server.stop()
