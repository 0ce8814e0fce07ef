"""Bad input, everywhere it enters: the Python CLI (`tfjs-bridge predict`),
`node node/predict.js` and the library functions behind them. Each case: one
line naming the file and what is wrong, exit 1 (2 for usage), no stack trace,
no output file. Table-driven; every model-folder case runs through both
entry points."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tfjs_bridge.cli import main
from tfjs_bridge.core.errors import BridgeError
from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.folder.checked_inputs import load_input
from tfjs_bridge.runtime.node_process import node_env


def _npy_with_header(path, shape, payload_bytes, descr="<f4"):
    """A .npy whose header says `shape` but which holds payload_bytes bytes."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
                     + b"\0" * payload_bytes)  # fmt: skip
    return path


def _save(path, array):
    np.save(path, array)
    return path


NAN = np.zeros((3, 1, 1), np.float32)
NAN[1] = np.nan
INF = np.zeros((3, 1, 1), np.float32)
INF[2] = -np.inf

# (id, make(tmp) -> input path, message) for the seed LSTM, input [N, 1, 1].
INPUT_CASES = [
    ("wrong-shape", lambda d: _save(d / "x.npy", np.zeros((3, 2, 1), np.float32)),
     "shape [3, 2, 1] does not fit the model's input [N, 1, 1]"),
    ("wrong-dtype", lambda d: _save(d / "x.npy", np.zeros((3, 1, 1), np.float64)),
     "dtype float64, the model takes float32"),
    ("empty", lambda d: _save(d / "x.npy", np.zeros((0, 1, 1), np.float32)), "empty (0 samples)"),
    ("not-npy", lambda d: (d / "x.npy").write_text("1,2,3\n") and d / "x.npy",
     "not a .npy file (no NUMPY magic)"),
    ("header-lies", lambda d: _npy_with_header(d / "x.npy", (1000, 1, 1), 12),
     "header declares shape [1000, 1, 1]"),
    ("memory-bomb", lambda d: _npy_with_header(d / "x.npy", (10**12, 1, 1), 12),
     "over the 2147483648-byte limit"),
    ("nan", lambda d: _save(d / "x.npy", NAN), "1 NaN/Inf values"),
    ("inf", lambda d: _save(d / "x.npy", INF), "1 NaN/Inf values"),
    ("missing", lambda d: d / "nowhere.npy", "no such file"),
    ("folder", lambda d: (d / "dir.npy").mkdir() or d / "dir.npy", "a folder, not a .npy file"),
]  # fmt: skip


def _python_predict(model_dir, x_path, out, *extra):
    return CliRunner().invoke(
        main, ["predict", str(model_dir), "--input", str(x_path), "--output", str(out), *extra]
    )


def _node_predict(model_dir, x_path, out, *extra):
    return subprocess.run(
        ["node", str(NODE_DIR / "predict.js"), "--model", str(model_dir), "--input", str(x_path),
         "--output", str(out), *extra],
        cwd=PROJECT_ROOT, env=node_env(), capture_output=True, text=True,
    )  # fmt: skip


def _one_error_line(text):
    lines = [ln for ln in text.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, text
    assert "Traceback" not in text and "    at " not in text, text
    return lines[0]


@pytest.fixture(scope="module")
def lstm_dir(small_models):
    return small_models / "lstm"


@pytest.mark.parametrize("case, make, message", INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_bad_input_file_python(node_runtime, lstm_dir, tmp_path, case, make, message):
    x_path = make(tmp_path)
    out = tmp_path / "y.npy"
    result = _python_predict(lstm_dir, x_path, out)
    assert result.exit_code == 1
    assert result.output.strip() == _one_error_line(result.output)
    assert result.output.startswith(f"error: {x_path}: ") and message in result.output
    assert not out.exists()


@pytest.mark.parametrize("case, make, message", INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_bad_input_file_node(node_runtime, lstm_dir, tmp_path, case, make, message):
    x_path = make(tmp_path)
    out = tmp_path / "y.npy"
    proc = _node_predict(lstm_dir, x_path, out, "--format", "layers")
    assert proc.returncode == 1
    line = _one_error_line(proc.stderr)
    assert line.startswith(f"error: {x_path}: ") and message in line
    assert not out.exists()


def test_nonfinite_inputs_run_when_allowed_and_propagate(node_runtime, lstm_dir, tmp_path):
    """Allowed, NaN and ±Inf go through Node as they go through Keras: the same
    NaNs where Keras has them, the same finite values elsewhere."""
    import tf_keras

    x = np.float32([1.0, np.nan, -np.inf, np.inf, 2.0]).reshape(5, 1, 1)
    _save(tmp_path / "x.npy", x)
    keras = tf_keras.models.load_model(lstm_dir / "keras.h5", compile=False)
    expected = keras(x, training=False).numpy()
    assert np.isnan(expected).any() and np.isfinite(expected).any()
    for name, run in [("py", _python_predict), ("node", _node_predict)]:
        out = tmp_path / f"y_{name}.npy"
        result = run(lstm_dir, tmp_path / "x.npy", out, "--allow-nonfinite")
        assert getattr(result, "exit_code", getattr(result, "returncode", None)) == 0
        y = np.load(out)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
        np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)  # NaN == NaN here


def test_library_refuses_before_allocating(tmp_path):
    """The header is checked against the file size before numpy reads anything."""
    path = _npy_with_header(tmp_path / "x.npy", (2**40, 1, 1), 4)
    with pytest.raises(BridgeError, match="over the 2147483648-byte limit"):
        load_input(path, (1, 1))


# -- damaged model folders: (id, damage(folder, rerecord), message) -------------


def _model_json(folder):
    return folder / "tfjs_layers" / "model.json"


def _edit_model_json(folder, rerecord, edit):
    model = json.loads(_model_json(folder).read_text())
    edit(model)
    _model_json(folder).write_text(json.dumps(model))
    rerecord(folder, "tfjs_layers/model.json")


def _shard(folder):
    return folder / "tfjs_layers" / "group1-shard1of1.bin"


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _symlink_out(folder, rerecord):
    outside = folder.parent / "elsewhere.bin"
    shutil.copyfile(_shard(folder), outside)
    _shard(folder).unlink()
    os.symlink(outside, _shard(folder))


FOLDER_CASES = [
    ("no-folder", lambda f, r: shutil.rmtree(f), "no manifest"),
    ("manifest-not-json", lambda f, r: (f / "manifest.json").write_text("{"), "not valid JSON"),
    ("model-json-not-json",
     lambda f, r: (_model_json(f).write_text("{oops"), r(f, "tfjs_layers/model.json")),
     "not a readable model.json"),
    ("model-json-lacks-keys",
     lambda f, r: _edit_model_json(f, r, lambda m: m.pop("weightsManifest")),
     "needs modelTopology and weightsManifest"),
    ("shard-missing", lambda f, r: _shard(f).unlink(), "missing (listed in manifest.json)"),
    ("shard-truncated",
     lambda f, r: (_shard(f).write_bytes(_shard(f).read_bytes()[:-8]),
                   r(f, "tfjs_layers/group1-shard1of1.bin")),
     "the shards hold"),
    ("shard-tampered", lambda f, r: _flip_a_byte(_shard(f)), "sha256 differs from manifest.json"),
    ("model-json-tampered",
     lambda f, r: _model_json(f).write_text(_model_json(f).read_text().replace("16", "17", 1)),
     "sha256 differs from manifest.json"),
    ("path-escapes-up",
     lambda f, r: _edit_model_json(
         f, r, lambda m: m["weightsManifest"][0].update(paths=["../../secret.bin"])),
     "points outside the model folder"),
    ("path-absolute",
     lambda f, r: _edit_model_json(
         f, r, lambda m: m["weightsManifest"][0].update(paths=["/etc/passwd"])),
     "points outside the model folder"),
    ("symlink-out", _symlink_out, "points outside the model folder"),
    ("memory-bomb-shape",
     lambda f, r: _edit_model_json(
         f, r, lambda m: m["weightsManifest"][0]["weights"][0].update(shape=[10**9, 10**9])),
     "impossible shape"),
    ("declared-bytes-lie",
     lambda f, r: _edit_model_json(
         f, r, lambda m: m["weightsManifest"][0]["weights"][0].update(shape=[1, 100000])),
     "the shards hold"),
]  # fmt: skip


@pytest.fixture
def damaged(lstm_dir, tmp_path):
    folder = tmp_path / "lstm"
    shutil.copytree(lstm_dir, folder)
    (tmp_path / "x.npy").write_bytes(b"")
    _save(tmp_path / "x.npy", np.float32([1, 2, 3]).reshape(3, 1, 1))
    return folder


@pytest.mark.parametrize("case, damage, message", FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES])
def test_damaged_model_folder(node_runtime, damaged, rerecord, tmp_path, case, damage, message):
    damage(damaged, rerecord)
    x_path = tmp_path / "x.npy"
    out = tmp_path / "y.npy"
    result = _python_predict(damaged, x_path, out, "--runtime", "tfjs-node/layers")
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert message in line and str(damaged) in line, line
    proc = _node_predict(damaged, x_path, out, "--format", "layers")
    assert proc.returncode == 1
    line = _one_error_line(proc.stderr)
    assert message in line and str(damaged) in line, line
    assert not out.exists()


def test_usage_errors_exit_2(lstm_dir, tmp_path):
    result = _python_predict(lstm_dir, tmp_path / "x.npy", tmp_path / "y.npy", "--runtime", "gpu")
    assert result.exit_code == 2 and "unknown runtime 'gpu'" in result.output
    cmd = ["node", str(NODE_DIR / "predict.js"), "--model", str(lstm_dir)]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=node_env(), capture_output=True, text=True)
    assert proc.returncode == 2 and _one_error_line(proc.stderr).startswith("error: usage:")


def test_missing_node_says_how_to_fix(lstm_dir, tmp_path):
    _save(tmp_path / "x.npy", np.float32([1]).reshape(1, 1, 1))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # the venv, no node
    proc = subprocess.run(
        [sys.executable, "-m", "tfjs_bridge.cli", "predict", str(lstm_dir), "--input",
         str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1
    assert _one_error_line(proc.stderr) == (
        "error: Node.js was not found on PATH: "
        "install Node.js (20, 22 or 24), then run `make setup`"
    )


@pytest.mark.parametrize("batches", ["0", "1,x", "", "32,-1", "1,,2"])
def test_bench_batch_sizes_are_positive_integers(batches):
    result = CliRunner().invoke(main, ["bench", "--batch", batches])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: --batch wants positive integers like 1,32,256, got '{batches}'"
    )
