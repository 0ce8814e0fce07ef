"""The foundation: both runtimes installed, on one TensorFlow build, and
tensors crossing between them bit-exactly."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tfjs_bridge import __version__
from tfjs_bridge.cli import main
from tfjs_bridge.core.errors import NodeError
from tfjs_bridge.folder.npy import load_array, save_array
from tfjs_bridge.runtime.addon import build_addon, tensorflow_c_library
from tfjs_bridge.runtime.node_process import run_node, run_node_json


def test_version_flag():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"tfjs-bridge, version {__version__}"


def test_converter_runs_from_the_venv():
    converter = Path(sys.executable).with_name("tensorflowjs_converter")
    proc = subprocess.run([str(converter), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tensorflowjs 4.22.0" in proc.stdout
    assert "tensorflow 2.19.0" in proc.stdout


def test_node_runs_the_python_tensorflow(node_runtime):
    info = run_node_json("scripts/doctor.js")
    assert info["backend"] == "tensorflow"
    assert info["tensorflow"] == "2.19.0"
    assert str(tensorflow_c_library()) in info["libtensorflow"]


def test_doctor_passes(node_runtime):
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "✓ Python and Node run the same TensorFlow build" in result.output
    assert re.search(r"^tfjs backend +tensorflow$", result.output, re.M), result.output


def test_addon_build_is_a_no_op_when_up_to_date(node_runtime):
    result = build_addon(log=lambda _: None)
    assert result.rebuilt is False
    assert result.tensorflow_version == "2.19.0"


def test_addon_build_without_tensorflow_says_what_to_run(tmp_path):
    result = CliRunner().invoke(main, ["build-addon", "--tf-dir", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: TensorFlow C library not found in {tmp_path}")
    assert "make setup" in lines[0]


def _special_float32() -> np.ndarray:
    bits = np.array(
        [
            0x7FC00000,  # quiet NaN
            0xFFC00000,  # negative NaN
            0x7FC00123,  # NaN with a payload
            0x7F800000,  # +Inf
            0xFF800000,  # -Inf
            0x80000000,  # -0.0
            0x00000001,  # smallest denormal
            0x807FFFFF,  # largest negative denormal
            0x00800000,  # smallest normal
            0x7F7FFFFF,  # float32 max
        ],
        dtype=np.uint32,
    )
    return bits.view(np.float32)


@pytest.mark.parametrize(
    "array",
    [
        _special_float32().reshape(2, 5),
        np.random.default_rng(0).standard_normal((3, 28, 28)).astype(np.float32),
        np.arange(-5, 7, dtype=np.int32).reshape(3, 4),
        np.float32([1.5]),
    ],
    ids=["special-float32", "random-float32", "int32", "one-element"],
)
def test_tensors_cross_to_node_and_back_bit_exactly(node_runtime, tmp_path, array):
    sent, returned = tmp_path / "sent.npy", tmp_path / "returned.npy"
    save_array(sent, array)
    info = run_node_json("scripts/echo-npy.js", sent, returned)
    back = load_array(returned)
    assert info["shape"] == list(array.shape)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()


def test_node_failure_becomes_a_clear_error(node_runtime, tmp_path):
    missing = tmp_path / "missing.npy"
    with pytest.raises(NodeError) as err:
        run_node("scripts/echo-npy.js", missing, tmp_path / "out.npy")
    assert str(err.value) == f"node echo-npy.js failed (exit 1): {missing}: no such file"
    assert not (tmp_path / "out.npy").exists()


def test_node_usage_error_exits_2(node_runtime):
    with pytest.raises(NodeError, match=r"exit 2\): usage: echo-npy.js"):
        run_node("scripts/echo-npy.js")
