"""ONNX Runtime Web in Chromium (#25, docs/runtimes.md): the `.onnx` of the
optional ONNX route (`make onnx`: tf2onnx), run by onnxruntime-web 1.31.1's
WASM build in a real headless Chromium page served by the project's
fastify, through node/worker.js like every browser path, and judged by
verify against Keras. A wrong weight is a mismatch there; a tampered file
is never sent to the page. Outside `make onnx` (no tf2onnx, or no
onnxruntime-web), every test here is a skip with that reason."""

import importlib.util
import shutil

import pytest

from path_checks import assert_passed, converted_copies, verify_each
from test_browser import require_browser
from tfjs_bridge.core.errors import NodeError
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import verify
from tfjs_bridge.runtime.runtimes import ENGINE_RUNTIMES, optional_missing
from tfjs_bridge.runtime.worker_process import NodeWorker
from tfjs_bridge.training.registry import MODELS

BACKEND = "chromium-ort-wasm"
RUNTIME = ENGINE_RUNTIMES[f"{BACKEND}/onnx"]
ONNX_FILE = "onnx/model.onnx"
SAMPLES = 32
TARGET = 1e-5
IN_CI = tuple(m for m in MODELS if m != "spam_rnn")  # as test_litert.py: its export is minutes


def require_ort_web(backend: str = BACKEND) -> None:
    missing = optional_missing(ENGINE_RUNTIMES[f"{backend}/onnx"]) or (
        None if importlib.util.find_spec("tf2onnx") else "tf2onnx is not installed: run `make onnx`"
    )
    if missing:
        pytest.skip(missing)  # an optional extra, as the onnxruntime-node paths
    require_browser(backend)


@pytest.fixture(scope="module")
def onnx_folders(small_models, tmp_path_factory):
    """The small models (IN_CI) with their .onnx (made here when the session's lack one)."""
    require_ort_web()
    root = tmp_path_factory.mktemp("ort_web")
    return converted_copies(small_models, root, IN_CI, "onnx", ONNX_FILE)


@pytest.fixture(scope="module")
def matrix(node_runtime, onnx_folders):
    return verify_each(onnx_folders, IN_CI, RUNTIME, SAMPLES)


@pytest.mark.parametrize("model", IN_CI)
def test_ort_web_wasm_matches_keras(matrix, model):
    report, results = matrix
    result = results[model]
    assert report.samples[model] == SAMPLES
    classification = MODELS[model].task == "classification"
    figures = assert_passed(result, SAMPLES, TARGET, classification)
    print(model, f"max |error| {figures['max_abs']:.2e}")


def test_the_page_reports_what_really_ran(matrix, onnx_folders):
    """onnxruntime-web's WASM build from our server (its .wasm fetched when a
    session is made), the wasm execution provider alone, no tfjs."""
    report, _ = matrix
    info = report.runtimes[BACKEND]
    assert info["engine"] == "ort" and info["backend"] == info["execution_provider"] == "wasm"
    assert info["onnxruntime-web"] == info["onnxruntime_web"] == "1.31.1"
    assert info["wasm_files"] == ["ort.wasm.min.js"] and info["threads"] == 1
    assert info["bundle"] == ["runtime/runners.js", "browser/wire.js", "browser/ort_page.js"]
    with NodeWorker(BACKEND, timeout=300) as worker:
        loaded = worker.load(onnx_folders / "lstm", "onnx")
    assert "ort-wasm-simd-threaded.wasm" in loaded["wasm_files"]


def _scale_largest_initializer(path, factor):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    floats = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    kernel = max(floats, key=lambda t: np.prod(t.dims))
    kernel.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(kernel) * factor, kernel.name))
    onnx.save(model, str(path))


def test_a_wrong_weight_is_a_mismatch_and_a_tampered_file_is_not_sent(
    node_runtime, onnx_folders, tmp_path, rerecord
):
    """The negative control: gru's largest weight scaled by 1.5. Not
    re-recorded, refused by its sha256 before the page sees it; re-recorded,
    ONNX Runtime Web runs it and verify calls the path a mismatch."""
    folder = tmp_path / "gru"
    shutil.copytree(onnx_folders / "gru", folder)
    _scale_largest_initializer(folder / ONNX_FILE, 1.5)
    with NodeWorker(BACKEND, timeout=300) as worker, pytest.raises(NodeError) as refused:
        worker.load(folder, "onnx")
    assert "sha256" in str(refused.value) and "\n" not in str(refused.value)
    rerecord(folder, ONNX_FILE)
    (result,) = verify([subject_from_folder(folder)], [RUNTIME], SAMPLES).results
    assert result.status == "mismatch" and result.figures["max_abs"] > 1e-3, result.reason
