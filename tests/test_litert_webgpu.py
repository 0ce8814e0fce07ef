"""LiteRT.js on WebGPU (#25, docs/runtimes.md): the `.tflite` converted at
static batches (`convert --format tflite --static-batch`), run by
@litertjs/core 2.5.3's WebGPU delegate in a real headless Chromium with
WebGPU enabled (SwiftShader here: no GPU), through node/worker.js like every
browser path, and judged by verify against Keras. A wrong weight is a
mismatch there; a model whose invoke fails, or that the delegate takes only
in part, is unsupported in one line naming the op, never a pass or a
mismatch on the zeros LiteRT.js hands back. Without Chromium: skips with
the reason (failures under CI=true)."""

import json
import shutil
import time

import numpy as np
import pytest

from path_checks import assert_passed
from test_browser import require_browser
from test_tflite import _scale_a_kernel
from tfjs_bridge.conversion.convert import convert
from tfjs_bridge.core.errors import NodeError
from tfjs_bridge.folder.parity_record import SKIP
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import node_verdict, verify
from tfjs_bridge.runtime.pool import SharedWorkers
from tfjs_bridge.runtime.runtimes import ENGINE_RUNTIMES, resolve_runtimes
from tfjs_bridge.runtime.worker_process import NodeWorker

BACKEND = "chromium-litert-webgpu"
RUNTIME = ENGINE_RUNTIMES[f"{BACKEND}/tflite"]
SAMPLES = 32  # SwiftShader runs each WebGPU kernel on the CPU
TARGET = 1e-5
STATIC = (1, 32)  # a batch of one, and verify's and bench's pieces (docs/runtimes.md)
MODELS = ("lstm", "gru")  # lstm runs; gru's GRU has an empty SPLIT_V output WebGPU cannot hold
STATIC_FILES = [f"tflite/model_b{b}.tflite" for b in STATIC]


@pytest.fixture(scope="module")
def webgpu_folders(small_models, tmp_path_factory):
    require_browser(BACKEND)
    root = tmp_path_factory.mktemp("litert_webgpu")
    for name in MODELS:
        shutil.copytree(small_models / name, root / name)
        convert(root / name, ("tflite",), static_batches=STATIC)
    return root


@pytest.fixture(scope="module")
def shared():
    """One page for the verify calls here (a Chromium start each, otherwise)."""
    with SharedWorkers(timeout=300) as workers:
        yield workers


@pytest.fixture(scope="module")
def matrix(node_runtime, webgpu_folders, shared):
    report = verify([subject_from_folder(webgpu_folders / m) for m in MODELS], [RUNTIME],
                    SAMPLES, shared=shared)  # fmt: skip
    return report, {r.model: r for r in report.results}


def test_the_static_batches_are_recorded_with_their_sha256(webgpu_folders):
    done = json.loads((webgpu_folders / "lstm" / "manifest.json").read_text())
    tflite = done["conversions"]["tflite"]
    assert tflite["static_batches"] == {str(b): f"model_b{b}.tflite" for b in STATIC}
    assert set(tflite["files"]) == {"model.tflite", *tflite["static_batches"].values()}


def test_lstm_on_webgpu_matches_keras(matrix):
    _, results = matrix
    figures = assert_passed(results["lstm"], SAMPLES, TARGET, classification=False)
    print("lstm", f"max |error| {figures['max_abs']:.2e}")


def test_an_empty_tensor_is_unsupported_in_one_line_naming_the_op(matrix):
    """gru's reset-before GRU splits its kernel into three, the last one
    empty ([B, 0]): the delegate fails on it, and verify says so."""
    _, results = matrix
    result = results["gru"]
    assert result.status == "unsupported", result.reason
    assert "op SPLIT_V" in result.reason and "empty tensor" in result.reason
    assert "\n" not in result.reason


def test_the_page_reports_the_adapter_and_no_fallback(matrix):
    report, _ = matrix
    info = report.runtimes[BACKEND]
    assert info["engine"] == "litert" and info["backend"] == info["requested_backend"] == "webgpu"
    assert info["webgpu_device"] is True and info["delegate_error_guard"] is True
    adapter = info["webgpu_adapter"]
    assert adapter["vendor"] and adapter["is_fallback_adapter"] in (True, False)
    print("adapter", adapter)


def _predict_one(worker, folder):
    handle = worker.load(folder, "tflite")["handle"]
    x = np.random.default_rng(1).random((1, 28, 28), dtype=np.float32)
    return worker.predict(handle, [x], None)[0]


def _tiny_tflite(path, batch):
    """A .tflite named as lstm's (input [B, 1, 1] -> dense_1) whose ADD_N of
    three terms LiteRT.js's WebGPU delegate does not take (it takes two)."""
    from tfjs_bridge.core.quiet_tf import import_tensorflow

    tf = import_tensorflow()
    spec = tf.TensorSpec([batch, 1, 1], tf.float32, name="input")
    fn = tf.function(lambda x: {"dense_1": tf.add_n([x[:, 0], 2 * x[:, 0], 3 * x[:, 0]])},
                     input_signature=[spec])  # fmt: skip
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    path.write_bytes(converter.convert())


def test_refusals_in_one_line(node_runtime, webgpu_folders, tmp_path, rerecord, monkeypatch):
    """One page for four refusals. (1) gru: WebGPU finds a texture empty
    when the delegate compiles it (SPLIT_V's [1, 0] output): refused naming
    the op. (2) A model the delegate takes only in part (ADD_N of three):
    refused at load naming ADD_N. (3) lstm with a kernel scaled and its
    sha256 not re-recorded: refused before the page sees it. (4) The
    dynamic-batch file alone (plain `convert --format tflite`): verify's
    skip, with the command that makes the static ones. Then the guard's
    control: with it off (TFJS_BRIDGE_LITERT_GUARD=off), gru runs, LiteRT.js
    logs "Node number 607 (LITERT_WEBGPU) failed to invoke", and run()
    answers anyway, with zeros only."""
    partial = tmp_path / "partial"
    shutil.copytree(webgpu_folders / "lstm", partial)
    for batch, rel in zip(STATIC, STATIC_FILES, strict=True):
        _tiny_tflite(partial / rel, batch)
        rerecord(partial, rel)
    tampered = tmp_path / "tampered"
    shutil.copytree(webgpu_folders / "lstm", tampered)
    _scale_a_kernel(tampered / STATIC_FILES[0], 1.5)
    dynamic = tmp_path / "dynamic"
    shutil.copytree(webgpu_folders / "lstm", dynamic)
    manifest = json.loads((dynamic / "manifest.json").read_text())
    del manifest["conversions"]["tflite"]["static_batches"]  # as plain --format tflite writes it
    (dynamic / "manifest.json").write_text(json.dumps(manifest))
    errors = []
    with NodeWorker(BACKEND, timeout=300) as worker:
        for load in (
            lambda: _predict_one(worker, webgpu_folders / "gru"),
            lambda: worker.load(partial, "tflite"),
            lambda: worker.load(tampered, "tflite"),
            lambda: worker.load(dynamic, "tflite"),
        ):
            with pytest.raises(NodeError) as refused:
                load()
            errors.append(refused.value)
    messages = [str(e) for e in errors]
    failed, not_delegated, unrecorded, _ = messages
    status, reason = node_verdict(errors[3])
    assert status == SKIP and "--static-batch 1,32" in reason, reason
    assert all("\n" not in m for m in messages), messages
    assert "tfjs-bridge cannot run op SPLIT_V" in failed and "empty tensor" in failed, failed
    assert "texture size" in failed
    assert "cannot run op ADD_N" in not_delegated, not_delegated
    assert "LiteRT.js would run it on WASM" in not_delegated
    assert "sha256" in unrecorded
    monkeypatch.setenv("TFJS_BRIDGE_LITERT_GUARD", "off")
    with NodeWorker(BACKEND, timeout=300) as worker:
        (y,) = _predict_one(worker, webgpu_folders / "gru")
        for _ in range(50):  # (stderr is read by a thread)
            if "failed to invoke" in worker.stderr:
                break
            time.sleep(0.1)
        log = worker.stderr
    assert y.shape == (1, 10) and not y.any()  # what the guard keeps from being an answer
    assert "Node number 607 (LITERT_WEBGPU) failed to invoke" in log, log[-2000:]


def test_a_wrong_weight_is_a_mismatch_on_webgpu(
    node_runtime, webgpu_folders, tmp_path, rerecord, shared
):
    """The negative control: lstm's largest kernel scaled by 1.5 in each
    static-batch file, their sha256 re-recorded: LiteRT.js's WebGPU
    delegate runs it and verify calls the path a mismatch."""
    folder = tmp_path / "lstm"
    shutil.copytree(webgpu_folders / "lstm", folder)
    for rel in STATIC_FILES:
        _scale_a_kernel(folder / rel, 1.5)
        rerecord(folder, rel)
    (result,) = verify([subject_from_folder(folder)], [RUNTIME], SAMPLES, shared=shared).results
    assert result.status == "mismatch" and result.figures["max_abs"] > 1e-3, result.reason
    print("wrong weight", f"max |error| {result.figures['max_abs']:.2e}")


def test_the_path_is_asked_for_by_name():
    assert [rt.name for rt in resolve_runtimes([BACKEND])] == [RUNTIME.name]
    assert RUNTIME not in resolve_runtimes(["chromium"]) and RUNTIME not in resolve_runtimes([])


def test_static_batches_are_asked_for_with_tflite_only(small_models, tmp_path):
    """Bad --static-batch values and the option without tflite: one-line
    usage errors, the folder untouched."""
    from tfjs_bridge.conversion.convert import parse_static_batches
    from tfjs_bridge.core.errors import UsageError

    assert parse_static_batches("32,1,32") == (1, 32) and parse_static_batches(None) == ()
    for bad in ("0", "1,x", ","):
        with pytest.raises(UsageError, match="--static-batch takes batch sizes >= 1"):
            parse_static_batches(bad)
    folder = tmp_path / "lstm"
    shutil.copytree(small_models / "lstm", folder)
    before = (folder / "manifest.json").read_bytes()
    with pytest.raises(UsageError, match="--static-batch applies to --format tflite only"):
        convert(folder, ("layers",), static_batches=(1,))
    assert (folder / "manifest.json").read_bytes() == before
