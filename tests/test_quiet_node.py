"""A Node script's stderr carries its own messages only: TensorFlow's C++
start-up lines (CUDA factories, "computation placer") are kept off it
(node/lib/runtime/tfnode.js), so a bad input is exactly one `error:` line,
even with no TF_CPP_MIN_LOG_LEVEL in the environment."""

import os
import subprocess

import pytest

from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT

STARTUP_NOISE = ("cuDNN factory", "computation placer", "absl::InitializeLog")


def _predict_bad_npy(model_dir, tmp_path, **env):
    bad = tmp_path / "x.npy"
    bad.write_bytes(b"not a numpy file")
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    cmd = ["node", str(NODE_DIR / "predict.js"), "--model", str(model_dir), "--input", str(bad)]
    return subprocess.run(
        cmd, cwd=PROJECT_ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_bad_input_is_exactly_one_line_on_stderr(node_runtime, small_models, tmp_path):
    proc = _predict_bad_npy(small_models / "lstm", tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {tmp_path / 'x.npy'}: "), lines[0]


def test_the_check_sees_startup_lines_when_they_are_let_through(
    node_runtime, small_models, tmp_path
):
    """Negative control: with TFJS_BRIDGE_DEBUG=1 tfnode.js does not hide them,
    and they are there, so the test above can tell a quiet Node from a noisy one."""
    proc = _predict_bad_npy(small_models / "lstm", tmp_path, TFJS_BRIDGE_DEBUG="1")
    assert proc.returncode == 1
    if not any(noise in proc.stderr for noise in STARTUP_NOISE):
        pytest.fail(f"no start-up lines even unhidden: the check cannot fail\n{proc.stderr}")


def _predict_saved_model(model_dir, fmt, **env):
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    cmd = ["node", str(NODE_DIR / "predict.js"), "--model", str(model_dir), "--format", fmt,
           "--mnist-test", "0:4", "--json"]  # fmt: skip
    return subprocess.run(
        cmd, cwd=PROJECT_ROOT, env={**clean, **env}, capture_output=True, text=True
    )


@pytest.mark.parametrize("fmt", ["saved_model", "saved_model_xla"])
def test_a_saved_model_runs_without_tensorflow_info_lines(node_runtime, small_models, fmt):
    """TensorFlow logs through absl when a SavedModel loads ("MLIR V1
    optimization pass") and when XLA first compiles, whatever
    TF_CPP_MIN_LOG_LEVEL says: a good run leaves stderr empty all the same."""
    proc = _predict_saved_model(small_models / "gru", fmt)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    # Negative control: unhidden, the lines are there, so the check above can fail.
    loud = _predict_saved_model(small_models / "gru", fmt, TFJS_BRIDGE_DEBUG="1")
    assert loud.returncode == 0, loud.stderr
    assert "MLIR V1 optimization pass" in loud.stderr or "XLA" in loud.stderr, loud.stderr
