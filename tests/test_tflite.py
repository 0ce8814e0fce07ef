"""`convert --format tflite` (#25): a .tflite per model folder from its
SavedModel, TFLite builtin ops only, recorded with its sha256; run in
Python's TFLite interpreter it computes what Keras computes, and `verify
--runtime python-tflite/tflite` says so by the rules of every path. A model
that needs Flex ops is refused naming them; a wrong weight fails (in verify
too); a tampered file is never read; Node says in one line that it has no
tflite path."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tfjs_bridge.conversion.convert import convert
from tfjs_bridge.conversion.keras_loader import TF_KERAS, load_keras
from tfjs_bridge.conversion.tflite_export import FlexOpsRefused, export_tflite, interpreter
from tfjs_bridge.core.errors import BridgeError, UsageError
from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.folder.artifacts import sha256
from tfjs_bridge.folder.formats import TFLITE
from tfjs_bridge.runtime.tflite_worker import TfliteModel

TFLITE_FILE = f"{TFLITE.folder}/{TFLITE.entry}"


def _verify(folder, report):
    """`tfjs-bridge verify` of one folder on the tflite path (and tfjs-node's
    layers path beside it): (exit code, {runtime: status})."""
    cmd = [sys.executable, "-m", "tfjs_bridge.cli", "verify", folder.name, "--out",
           str(folder.parent), "--runtime", "python-tflite/tflite", "--runtime",
           "tfjs-node/layers", "--samples", "100", "--report", str(report)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    results = json.loads((report / "report.json").read_text())["results"]
    return proc.returncode, {r["runtime"]: r["status"] for r in results}, proc


@pytest.fixture(scope="module")
def gru_tflite(small_models, tmp_path_factory):
    """A copy of the small gru folder, converted to tflite once."""
    folder = tmp_path_factory.mktemp("tflite") / "gru"
    shutil.copytree(small_models / "gru", folder)
    convert(folder, ("tflite",))
    return folder


@pytest.fixture(scope="module")
def gru_keras(gru_tflite):
    """Inputs, and Keras's outputs for them: the truth."""
    x = np.random.default_rng(25).random((64, 28, 28), dtype=np.float32)
    model = load_keras(gru_tflite / "keras.h5", TF_KERAS)
    return x, model.predict(x, verbose=0)


def _only(outputs: dict):
    """gru's one output, whatever Keras named its Dense layer (dense, dense_7, ...:
    the name depends on how many models the session built before)."""
    (y,) = outputs.values()
    return y


def test_tflite_is_recorded_builtin_only_and_computes_what_keras_computes(gru_tflite, gru_keras):
    manifest = json.loads((gru_tflite / "manifest.json").read_text())
    done = manifest["conversions"]["tflite"]
    assert done["files"] == {TFLITE.entry: sha256(gru_tflite / TFLITE_FILE)}
    assert done["ops_set"] == "TFLITE_BUILTINS" and "FULLY_CONNECTED" in done["ops"]
    assert not [op for op in done["ops"] if op.startswith("Flex") or op == "CUSTOM"]
    x, truth = gru_keras
    model = TfliteModel(gru_tflite)
    y = _only(model.predict({"input": x}))
    np.testing.assert_allclose(y, truth, atol=1e-5, rtol=1e-5)
    assert (y.argmax(1) == truth.argmax(1)).all()
    # Another batch size: the input is resized, the answers are the same.
    one = _only(model.predict({"input": x[:1]}))
    np.testing.assert_allclose(one, truth[:1], atol=1e-5, rtol=1e-5)


def _scale_a_kernel(path, factor):
    """Multiply the largest float32 constant (a kernel) in the .tflite by factor, in place."""
    content = bytearray(path.read_bytes())
    interp = interpreter(bytes(content))
    interp.allocate_tensors()
    consts = []
    for d in interp.get_tensor_details():
        try:
            value = interp.get_tensor(d["index"])
        except ValueError:
            continue
        if value.dtype == np.float32 and value.size >= 64:
            consts.append(value)
    kernel = max(consts, key=lambda v: v.size)
    at = bytes(content).find(kernel.tobytes())
    assert at > 0, "the kernel's bytes are not in the file"
    content[at : at + kernel.nbytes] = (kernel * factor).astype(np.float32).tobytes()
    path.write_bytes(bytes(content))


def test_a_wrong_weight_fails_and_a_tampered_file_is_not_read(
    node_runtime, gru_tflite, gru_keras, tmp_path, rerecord
):
    """The negative control: one kernel scaled by 1.5. Unrecorded, the file
    is refused by its sha256; re-recorded (a wrong but consistent model),
    it loads, and its answers are not Keras's."""
    folder = tmp_path / "gru"
    shutil.copytree(gru_tflite, folder)
    _scale_a_kernel(folder / TFLITE_FILE, 1.5)
    with pytest.raises(BridgeError, match="sha256 differs from manifest.json"):
        TfliteModel(folder)
    rerecord(folder, TFLITE_FILE)
    x, truth = gru_keras
    y = _only(TfliteModel(folder).predict({"input": x}))
    assert np.abs(y - truth).max() > 1e-3
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(y, truth, atol=1e-5, rtol=1e-5)
    code, statuses, proc = _verify(folder, tmp_path / "report")
    assert code == 1 and statuses["python-tflite/tflite"] == "mismatch", proc.stdout
    assert statuses["tfjs-node/layers"] == "pass"  # the rest of the folder is right


def test_verify_passes_the_tflite_path_against_keras(node_runtime, gru_tflite, tmp_path):
    folder = tmp_path / "gru"
    shutil.copytree(gru_tflite, folder)  # verify writes parity.json into the folder
    code, statuses, proc = _verify(folder, tmp_path / "report")
    assert code == 0, proc.stdout + proc.stderr
    assert statuses == {"python-tflite/tflite": "pass", "tfjs-node/layers": "pass"}
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["versions"]["node"]["python-tflite"]["runtime"] == "tf.lite.Interpreter"


def test_a_model_needing_flex_ops_is_refused_naming_them(tmp_path):
    """A GRU over a time axis of unknown length stays a while loop over
    TensorLists: no TFLite builtin op for it."""
    from tfjs_bridge.core.quiet_tf import import_tensorflow

    tf = import_tensorflow()
    import tf_keras as keras

    model = keras.Sequential([keras.layers.GRU(4, input_shape=(None, 3)), keras.layers.Dense(2)])
    spec = tf.TensorSpec((None, None, 3), tf.float32, name="input")
    serve = tf.function(lambda x: {"dense": model(x)}, input_signature=[spec])
    tf.saved_model.save(model, str(tmp_path / "saved_model"), signatures={"serving_default": serve})
    (tmp_path / "tflite").mkdir()
    with pytest.raises(FlexOpsRefused) as refused:
        export_tflite(tmp_path, tmp_path / "tflite")
    message = str(refused.value)
    assert "\n" not in message and "TensorListReserve" in refused.value.ops, message
    assert "Flex/SELECT_TF_OPS" in message
    assert not (tmp_path / TFLITE_FILE).exists()


def test_quantized_tflite_is_judged_by_the_budget(node_runtime, gru_tflite, tmp_path):
    """--quantize float16 in TFLite's terms: a smaller file, recorded as
    quantized, so verify judges it by quantization.py's accuracy budget (not
    by 1e-5, which float16 weights miss). uint16 has no TFLite counterpart."""
    folder = tmp_path / "gru"
    shutil.copytree(gru_tflite, folder)
    before = sha256(folder / "manifest.json")
    with pytest.raises(UsageError, match="uint16 has no TFLite counterpart"):
        convert(folder, ("tflite",), quantize="uint16")
    assert sha256(folder / "manifest.json") == before
    convert(folder, ("tflite",), quantize="float16")
    done = json.loads((folder / "manifest.json").read_text())["conversions"]["tflite"]
    assert done["quantize"] == "float16" and done["tflite_optimization"] == "float16"
    assert done["weight_bytes"] == (folder / TFLITE_FILE).stat().st_size
    assert done["weight_bytes"] < 0.9 * done["float32_weight_bytes"]
    code, statuses, proc = _verify(folder, tmp_path / "report")
    assert code == 0 and statuses["python-tflite/tflite"] == "pass", proc.stdout
    results = json.loads((tmp_path / "report" / "report.json").read_text())["results"]
    (result,) = [r for r in results if r["runtime"] == "python-tflite/tflite"]
    assert result["quantization"]["dtype"] == "float16" and result["max_abs"] > 1e-5


def test_tfjs_node_has_no_tflite_path_and_says_so_in_one_line(node_runtime, gru_tflite):
    proc = subprocess.run(
        ["node", str(NODE_DIR / "predict.js"), "--model", str(gru_tflite), "--format", "tflite",
         "--mnist-test", "0:2"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: the tflite format does not run on tfjs (it runs in LiteRT: LiteRT.js's own worker,"
        " `--runtime litert-node-wasm`, or Python's TFLite interpreter)"
    ]


def test_bench_times_the_tflite_path_like_a_node_path(gru_tflite):
    """bench_node drives the in-process interpreter through the worker
    protocol's bench and memory, as it drives a Node worker (it had neither)."""
    from tfjs_bridge.bench.routes import bench_node
    from tfjs_bridge.parity.truth import subject_from_folder
    from tfjs_bridge.runtime.runtimes import PYTHON_RUNTIMES

    runtime = PYTHON_RUNTIMES["python-tflite/tflite"]
    report = bench_node([(subject_from_folder(gru_tflite), runtime)], [1, 4], budget_s=0.05)
    timed = {t.batch: t for t in report.timings if t.route == runtime.name}
    assert sorted(timed) == [1, 4], report.timings
    assert all(len(t.ms) >= 5 and t.first_ms > 0 and t.throughput > 0 for t in timed.values())
    assert report.peak_rss["node/python-tflite"] > 0
