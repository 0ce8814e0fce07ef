"""LiteRT.js in Node (#25, docs/runtimes.md): `litert-node-wasm/tflite`, the
folder's `.tflite` run by @litertjs/core's own WebAssembly in a Node worker
(`node node/worker.js --backend litert`, no tfjs in the process), judged by
verify against Keras like every path. A wrong weight is a mismatch; a
tampered file is refused before LiteRT.js reads it."""

import shutil

import pytest

from path_checks import assert_passed, converted_copies, verify_each
from test_tflite import TFLITE_FILE, _scale_a_kernel
from tfjs_bridge.core.errors import NodeError
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import verify
from tfjs_bridge.runtime.runtimes import NODE_ENGINE_RUNTIMES, resolve_runtimes
from tfjs_bridge.runtime.worker_process import NodeWorker

BACKEND = "litert"
RUNTIME = NODE_ENGINE_RUNTIMES["litert-node-wasm/tflite"]
SAMPLES = 64
TARGET = 1e-5
MODELS = ("gru", "lstm")  # a classifier over 28 steps, and the seed LSTM


@pytest.fixture(scope="module")
def tflite_folders(small_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("litert_node")
    return converted_copies(small_models, root, MODELS, "tflite", TFLITE_FILE)


@pytest.fixture(scope="module")
def matrix(node_runtime, tflite_folders):
    return verify_each(tflite_folders, MODELS, RUNTIME, SAMPLES)


@pytest.mark.parametrize("model", MODELS)
def test_litert_in_node_matches_keras(matrix, model):
    _, results = matrix
    figures = assert_passed(results[model], SAMPLES, TARGET, classification=model == "gru")
    print(model, f"max |error| {figures['max_abs']:.2e}")


def test_the_worker_reports_what_really_ran(matrix):
    """LiteRT.js's version, the build it chose from its own wasm/ folder, one
    thread, the WASM accelerator; no tfjs in the process."""
    report, _ = matrix
    info = report.runtimes[BACKEND]
    assert info["engine"] == "litert" and info["accelerator"] == "wasm"
    assert info["litertjs"] == "2.5.3" and info["threads"] == 1
    assert len(info["wasm_files"]) == 1 and info["wasm_files"][0].startswith("litert_wasm_")
    assert "tfjs" not in info
    print("hello", info)


def test_the_path_is_asked_for_by_name():
    assert resolve_runtimes(["litert-node-wasm"]) == [RUNTIME]
    assert RUNTIME not in resolve_runtimes([])  # never part of the default Node paths


def test_a_wrong_weight_is_a_mismatch_and_a_tampered_file_is_not_read(
    node_runtime, tflite_folders, tmp_path, rerecord
):
    """The negative control: gru's largest kernel scaled by 1.5. Not
    re-recorded, the worker refuses the file by its sha256; re-recorded,
    LiteRT.js runs it and verify calls the path a mismatch."""
    folder = tmp_path / "gru"
    shutil.copytree(tflite_folders / "gru", folder)
    _scale_a_kernel(folder / TFLITE_FILE, 1.5)
    with NodeWorker(BACKEND, timeout=120) as worker:
        with pytest.raises(NodeError) as refused:
            worker.load(folder, "tflite")
        assert "sha256" in str(refused.value) and "\n" not in str(refused.value)
        with pytest.raises(NodeError) as other_format:
            worker.load(tflite_folders / "gru", "layers")
        assert "the litert backend runs the tflite format, not layers" in str(other_format.value)
    rerecord(folder, TFLITE_FILE)
    (result,) = verify([subject_from_folder(folder)], [RUNTIME], SAMPLES).results
    assert result.status == "mismatch" and result.figures["max_abs"] > 1e-3, result.reason
    print("wrong weight", f"max |error| {result.figures['max_abs']:.2e}")
