"""The persistent Node worker: answers, and failures that surface in bounded
time with Node's own reason (a real Node process every time)."""

import os
import signal
import time

import numpy as np
import pytest

from tfjs_bridge.core.errors import NodeError
from tfjs_bridge.runtime.worker_process import NodeWorker


@pytest.fixture
def lstm_dir(small_models):
    return small_models / "lstm"


def test_worker_predicts_and_stays_up_after_a_bad_request(node_runtime, lstm_dir):
    with NodeWorker("tensorflow") as worker:
        assert worker.info["backend"] == "tensorflow" and worker.info["tensorflow"] == "2.19.0"
        with pytest.raises(NodeError, match="unknown op 'nope'"):
            worker.request("nope")
        with pytest.raises(NodeError, match="no model loaded under handle 99"):
            worker.predict(99, np.zeros((1, 1, 1), np.float32))
        handle = worker.load(lstm_dir, "layers")["handle"]
        (y,), timing = worker.predict(handle, np.float32([1, 2, 3]).reshape(3, 1, 1))
        assert y.shape == (3, 1) and y.dtype == np.float32 and timing["ms"] > 0


def test_missing_model_is_named_in_one_line(node_runtime, tmp_path):
    with NodeWorker("cpu") as worker, pytest.raises(NodeError) as err:
        worker.load(tmp_path / "nowhere", "layers")
    message = str(err.value)
    assert (
        "\n" not in message and str(tmp_path / "nowhere" / "tfjs_layers" / "model.json") in message
    )


def test_a_killed_worker_is_reported_not_waited_for(node_runtime):
    worker = NodeWorker("cpu")
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    started = time.monotonic()
    with pytest.raises(NodeError, match=r"is not running \(exit code -9\)"):
        worker.request("hello")
    assert time.monotonic() - started < 5


def test_a_slow_answer_times_out(node_runtime, small_models):
    """The pure-JS backend needs seconds for 2,000 MNIST rows through the GRU;
    a 50 ms deadline must fire, and kill the worker, instead of hanging."""
    with NodeWorker("cpu", timeout=60) as worker:
        handle = worker.load(small_models / "gru", "layers")["handle"]
        x = np.zeros((2000, 28, 28), np.float32)
        started = time.monotonic()
        with pytest.raises(NodeError, match=r"(gave no answer within|took no input for) 0.05 s"):
            worker.request("predict", [x], handle=handle, timeout=0.05)
        assert time.monotonic() - started < 5
        assert worker.proc.poll() is not None


def test_a_worker_that_cannot_start_says_why(node_runtime):
    with pytest.raises(NodeError, match="unknown backend 'tpu'"):
        NodeWorker("tpu")


def test_shared_workers_load_each_path_once_for_verify_and_timing(node_runtime, small_models,
                                                                   tmp_path):  # fmt: skip
    """convert's check verifies, then times, on one worker per backend and one
    load per path (pool.SharedWorkers): timing starts from verify's load."""
    import shutil

    from tfjs_bridge.bench.routes import bench_node
    from tfjs_bridge.parity.truth import subject_from_folder
    from tfjs_bridge.parity.verify import verify_models
    from tfjs_bridge.runtime.pool import SharedWorkers
    from tfjs_bridge.runtime.runtimes import RUNTIMES

    folder = shutil.copytree(small_models / "lstm", tmp_path / "lstm")  # parity.json is written
    layers = RUNTIMES["tfjs-node/layers"]
    with SharedWorkers() as shared:
        report = verify_models([folder], [], [layers], 8, shared=shared)
        assert [r.status for r in report.results] == ["pass"], report.results
        worker = shared.get("tensorflow")
        kept = worker.load(folder, "layers")  # verify's load, not a new one
        assert kept["first_call_ms"] > 0
        timed = bench_node([(subject_from_folder(folder), layers)], [1], 0.05, shared=shared,
                           warmup=1, min_reps=1)  # fmt: skip
        assert timed.first_call_ms[("lstm", "tfjs-node/layers")] == kept["first_call_ms"]
        assert timed.load_ms[("lstm", "tfjs-node/layers")] == kept["load_ms"]
        assert shared.get("tensorflow") is worker and worker.load(folder, "layers") is kept
    # the control: a plain worker loads afresh, under a new handle, every time
    with NodeWorker("tensorflow") as plain:
        assert plain.load(folder, "layers")["handle"] != plain.load(folder, "layers")["handle"]
