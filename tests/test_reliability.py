"""Crashes and concurrency lose nothing: real processes killed with SIGKILL at
many points, `train --resume`, two writers at once, and Node predictions that
leak no tensors."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tfjs_bridge.folder import artifacts
from tfjs_bridge.runtime.worker_process import NodeWorker
from tfjs_bridge.training.registry import get_spec
from tfjs_bridge.training.train import resume_dir, train

CLI = [sys.executable, "-m", "tfjs_bridge.cli"]


def _snapshot(folder):
    return {str(p.relative_to(folder)): artifacts.sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def _assert_complete(folder):
    """A model folder whose manifest is readable and whose every recorded file matches it."""
    manifest = artifacts.read_manifest(folder)
    artifacts.check_integrity(folder, sorted(manifest["files"]), manifest)
    for conversion in manifest.get("conversions", {}).values():
        rels = [f"{conversion['output']}/{name}" for name in conversion["files"]]
        artifacts.check_integrity(folder, rels, manifest)
    return manifest


def _kill_when(cmd, ready, delay, timeout=120):
    """Start cmd; once ready() is true, wait `delay` s and SIGKILL it. Returns
    the exit code (-9 if it was killed while running)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def _staging_exists(root, name):
    return lambda: any(root.glob(f".{name}.*.tmp"))


KILL_DELAYS = [0.0, 0.3, 1.0, 2.5]  # after the staging folder appears


@pytest.fixture
def trained(tmp_path):
    root = tmp_path / "models"
    train(get_spec("lstm"), root)
    return root


def test_sigkill_during_train_keeps_the_previous_model(trained):
    folder = trained / "lstm"
    before = _snapshot(folder)
    killed = 0
    for delay in KILL_DELAYS:
        code = _kill_when([*CLI, "train", "lstm", "--out", str(trained), "--seed", "1"],
                          _staging_exists(trained, "lstm"), delay)  # fmt: skip
        killed += code == -signal.SIGKILL
        manifest = _assert_complete(folder)
        after = _snapshot(folder)
        assert after == before or manifest["seed"] == 1, "neither the old model nor a whole new one"
        before = after
    assert killed >= 2, "the kills must land while the run is still going"


def test_sigkill_during_convert_keeps_the_previous_model(trained):
    from tfjs_bridge.conversion.convert import convert

    folder = trained / "lstm"
    convert(folder, ("layers",))
    before = _snapshot(folder)
    killed = 0
    for delay in KILL_DELAYS:
        code = _kill_when([*CLI, "convert", "lstm", "--out", str(trained)],
                          _staging_exists(trained, "lstm"), delay)  # fmt: skip
        killed += code == -signal.SIGKILL
        manifest = _assert_complete(folder)
        if _snapshot(folder) != before:  # a complete new conversion took its place
            assert {"layers", "graph"} <= set(manifest["conversions"])
        before = _snapshot(folder)
    assert killed >= 2


def test_train_resume_continues_after_an_interruption(tmp_path):
    root = tmp_path / "models"
    progress = resume_dir(root, "gru") / "epochs.json"

    def three_epochs_logged():
        # The log is written just before each epoch's checkpoint: 3 logged means
        # at least 2 checkpointed.
        try:
            return len(json.loads(progress.read_text())["epoch_seconds"]) >= 3
        except (OSError, ValueError):
            return False

    cmd = [*CLI, "train", "gru", "--epochs", "5", "--limit", "2000", "--out", str(root)]
    assert _kill_when(cmd, three_epochs_logged, 0.0) == -signal.SIGKILL
    assert not (root / "gru").exists() and (resume_dir(root, "gru") / "checkpoint").exists()
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "gru: resumed after epoch" in done.stdout
    manifest = _assert_complete(root / "gru")
    assert manifest["epochs"] == 5 and 2 <= manifest["resumed_from_epoch"] < 5
    assert len(manifest["history"]["loss"]) == len(manifest["test_accuracy_per_epoch"]) == 5
    assert not resume_dir(root, "gru").exists()  # finished: nothing left to resume


def test_two_converts_at_once_take_turns(trained):
    cmd = [*CLI, "convert", "lstm", "--format", "layers", "--out", str(trained)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    waited = [err for _, err in results if "note: waiting for " in err]
    assert len(waited) == 1, results
    _assert_complete(trained / "lstm")


def test_a_held_lock_times_out_with_a_clear_message(trained, monkeypatch):
    from tfjs_bridge.core.errors import BridgeError

    monkeypatch.setenv("TFJS_BRIDGE_LOCK_TIMEOUT", "0.5")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
         "f.write('tfjs-bridge pid 4242'); f.flush(); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('locked', flush=True); time.sleep(30)", str(trained / ".lstm.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BridgeError, match="still locked by tfjs-bridge pid 4242 after 0.5 s"):
            with artifacts.model_lock(trained / "lstm"):
                pass
    finally:
        holder.kill()
        holder.wait()


# -- no leaks in Node -------------------------------------------------------------

LEAK_REPS = 1000


@pytest.mark.parametrize(
    "backend, formats",
    [("tensorflow", ["layers", "graph", "saved_model", "saved_model_xla"]),
     ("cpu", ["layers", "graph"]), ("wasm", ["layers", "graph"])],
)  # fmt: skip
def test_a_thousand_predictions_leak_nothing(node_runtime, small_models, backend, formats):
    x = np.float32([1, 2, 3]).reshape(3, 1, 1)
    with NodeWorker(backend) as worker:
        for fmt in formats:
            handle = worker.load(small_models / "lstm", fmt)["handle"]
            worker.predict(handle, x)  # first call: lazily built state is not a leak
            before = worker.memory()
            for _ in range(50):  # the request path: tensors in and out of the protocol
                worker.predict(handle, x)
            result, _ = worker.request("bench", [x], handle=handle, warmup=1, budget_ms=0,
                                       min_reps=LEAK_REPS, max_reps=LEAK_REPS)  # fmt: skip
            after = worker.memory()
            assert len(result["ms"]) == LEAK_REPS
            assert after["num_tensors"] == before["num_tensors"], fmt
            assert after["num_bytes"] == before["num_bytes"], fmt
            assert after["rss"] - before["rss"] < 64 * 2**20, (fmt, before, after)
            worker.dispose(handle)
        assert worker.memory()["num_tensors"] == 0  # disposing a model frees its weights


def test_onnx_predictions_leak_no_memory(node_runtime, small_models):
    from tfjs_bridge.runtime.runtimes import RUNTIMES, optional_missing

    missing = optional_missing(RUNTIMES["onnxruntime-node/onnx"])
    if missing or not (small_models / "lstm" / "onnx").exists():
        pytest.skip(missing or "no onnx export")
    x = np.float32([1, 2, 3]).reshape(3, 1, 1)
    with NodeWorker("onnxruntime") as worker:
        handle = worker.load(small_models / "lstm", "onnx")["handle"]
        worker.predict(handle, x)
        before = worker.memory()
        worker.request("bench", [x], handle=handle, warmup=1, budget_ms=0,
                       min_reps=LEAK_REPS, max_reps=LEAK_REPS)  # fmt: skip
        assert worker.memory()["rss"] - before["rss"] < 64 * 2**20
