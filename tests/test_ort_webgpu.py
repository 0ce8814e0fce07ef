"""ONNX Runtime Web on WebGPU (#25, docs/runtimes.md): the `.onnx` of the
optional ONNX route run by onnxruntime-web 1.31.1's WebGPU build
(`onnxruntime-web/webgpu`) in a real headless Chromium with WebGPU enabled
(SwiftShader here: no GPU), through node/worker.js like every browser path,
and judged by verify against Keras. The page reports the adapter and where
ONNX Runtime placed each node; a wrong weight is a mismatch there; an LSTM
the provider has no shader for is unsupported, in one line naming it.
Outside `make onnx`, every test here is a skip with the reason."""

import shutil

import pytest

from path_checks import assert_passed, converted_copies, verify_each
from test_ort_web import _scale_largest_initializer, require_ort_web
from tfjs_bridge.core.errors import NodeError
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import verify
from tfjs_bridge.runtime.runtimes import ENGINE_RUNTIMES
from tfjs_bridge.runtime.worker_process import NodeWorker

BACKEND = "chromium-ort-webgpu"
RUNTIME = ENGINE_RUNTIMES[f"{BACKEND}/onnx"]
ONNX_FILE = "onnx/model.onnx"
SAMPLES = 32  # SwiftShader runs each WebGPU kernel on the CPU: seconds per call
TARGET = 1e-5
MODELS = ("gru", "lstm")  # gru runs; lstm's HardSigmoid has no WebGPU shader


@pytest.fixture(scope="module")
def onnx_folders(small_models, tmp_path_factory):
    require_ort_web(BACKEND)
    root = tmp_path_factory.mktemp("ort_webgpu")
    return converted_copies(small_models, root, MODELS, "onnx", ONNX_FILE)


@pytest.fixture(scope="module")
def matrix(node_runtime, onnx_folders):
    return verify_each(onnx_folders, MODELS, RUNTIME, SAMPLES)


def test_gru_on_webgpu_matches_keras(matrix):
    report, results = matrix
    figures = assert_passed(results["gru"], SAMPLES, TARGET, classification=True)
    print("gru", f"max |error| {figures['max_abs']:.2e}")


def test_an_op_the_provider_cannot_run_is_unsupported_in_one_line(matrix):
    """tf2onnx maps the seed LSTM to ONNX's LSTM op with a HardSigmoid gate;
    the WebGPU provider takes the node, then has no shader for it."""
    _, results = matrix
    result = results["lstm"]
    assert result.status == "unsupported", result.reason
    assert "LSTM" in result.reason and "HardSigmoid" in result.reason
    assert "\n" not in result.reason


def test_the_page_reports_the_adapter_and_where_each_node_ran(matrix, onnx_folders):
    """The WebGPU build from our server, the webgpu provider alone, the
    adapter Chromium gave; on load, the nodes ONNX Runtime placed on WebGPU
    (the GRU's step) and those it kept on its CPU provider (the loop)."""
    report, _ = matrix
    info = report.runtimes[BACKEND]
    assert info["engine"] == "ort" and info["backend"] == info["execution_provider"] == "webgpu"
    assert info["onnxruntime-web"] == "1.31.1" and info["wasm_files"] == ["ort.webgpu.min.js"]
    assert info["webgpu_adapter"]["vendor"]  # e.g. google / swiftshader
    print("adapter", info["webgpu_adapter"])
    with NodeWorker(BACKEND, timeout=300) as worker:
        loaded = worker.load(onnx_folders / "gru", "onnx")
    assert "ort-wasm-simd-threaded.asyncify.wasm" in loaded["wasm_files"]
    placed = loaded["placements"]
    on_gpu = placed["WebGpuExecutionProvider"]
    assert on_gpu["count"] > 0 and {"MatMul", "Tanh"} <= set(on_gpu["ops"])
    assert set(placed) <= {"WebGpuExecutionProvider", "CPUExecutionProvider"}
    print("placements", placed)


def _det_only_onnx(path):
    """An .onnx of one Det op on the gru's input, named as gru's: a node the
    WebGPU provider has no kernel for, so ONNX Runtime would run the whole
    model on its CPU provider."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Det", ["input"], ["dense"])],
        "det",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["N"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_model_with_no_node_on_webgpu_is_refused(node_runtime, onnx_folders, tmp_path, rerecord):
    """The control for the placements: a model ONNX Runtime would run on its
    CPU provider alone (its log: "All nodes placed on [CPUExecutionProvider]")
    is refused at load, in one line, rather than timed as WebGPU; the wasm
    path loads the same file."""
    folder = tmp_path / "gru"
    shutil.copytree(onnx_folders / "gru", folder)
    _det_only_onnx(folder / ONNX_FILE)
    rerecord(folder, ONNX_FILE)
    with NodeWorker(BACKEND, timeout=300) as worker, pytest.raises(NodeError) as refused:
        worker.load(folder, "onnx")
    message = str(refused.value)
    assert "placed no node of the model on WebGPU (CPUExecutionProvider)" in message, message
    assert "\n" not in message
    with NodeWorker("chromium-ort-wasm", timeout=300) as worker:
        assert worker.load(folder, "onnx")["outputs"] == ["dense"]


def test_a_wrong_weight_is_a_mismatch_on_webgpu(node_runtime, onnx_folders, tmp_path, rerecord):
    """The negative control: gru's largest weight scaled by 1.5, its sha256
    re-recorded; ONNX Runtime Web on WebGPU runs it and verify calls the
    path a mismatch."""
    folder = tmp_path / "gru"
    shutil.copytree(onnx_folders / "gru", folder)
    _scale_largest_initializer(folder / ONNX_FILE, 1.5)
    rerecord(folder, ONNX_FILE)
    (result,) = verify([subject_from_folder(folder)], [RUNTIME], SAMPLES).results
    assert result.status == "mismatch" and result.figures["max_abs"] > 1e-3, result.reason
    print("wrong weight", f"max |error| {result.figures['max_abs']:.2e}")
