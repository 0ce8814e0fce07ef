"""The browser paths (docs/browser.md): real Chromium and Firefox from
Debian's packages, driven by node/worker.js through puppeteer-core, every
registry model in both tfjs formats on every browser backend, against
Python. One browser launch per backend for all of its models. A browser
that is not installed is a skip with its reason here, and a failure under
CI=true (`make test` then runs `make browser` first)."""

import json
import os
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from path_checks import assert_passed
from tfjs_bridge.core.errors import NodeError
from tfjs_bridge.core.paths import MODELS_DIR, PROJECT_ROOT
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import verify
from tfjs_bridge.runtime.runtimes import (
    BROWSER_BACKENDS,
    BROWSER_RUNTIMES,
    browser_missing,
    resolve_runtimes,
)
from tfjs_bridge.runtime.worker_process import NodeWorker
from tfjs_bridge.training.registry import MODELS

SAMPLES = 32  # per model; plus verify's 4 one-at-a-time calls. A page is slow to feed.
TARGET = 1e-5  # issue #14: every path within 1e-5 of Keras (the spec's tolerance)
# Measured, not hoped: tfjs-backend-webgpu 4.22 compiles a broken WGSL shader
# for the converter's masked loop (spam_rnn's Embedding(mask_zero) -> GRU), and
# for the converter's masked average (spam: the mask cast to float; our layers
# make that mask with where() instead, and pass); the page reports the device
# error and the path fails instead of returning garbage.
WGSL_ERROR = "the page's WebGPU device reported: Error while parsing WGSL"
KNOWN_FAILURES = {
    ("spam_rnn", "chromium-webgpu/graph"): WGSL_ERROR,
    ("spam", "chromium-webgpu/graph"): WGSL_ERROR,
}


def require_browser(backend: str) -> None:
    reason = browser_missing(backend)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run every runtime")
        pytest.skip(reason)


# chromium-webgpu runs on SwiftShader's Vulkan, on the CPU: each kernel call
# costs milliseconds, so a recurrent model costs per time step. Measured with
# 32 samples: spam_rnn's layers path (200 steps) 76 s, rnn_stack 18 s a format,
# lstm_sine 6 s; gru 6 s, gru_keras 1 s, spam_rnn's graph path 4 s (it fails at
# once); spam has no recurrent layer. `make test` runs webgpu on these pairs;
# `make verify` on all of them.
WEBGPU_IN_CI = {
    "chromium-webgpu/layers": ("gru", "lstm", "gru_keras", "spam"),
    "chromium-webgpu/graph": ("gru", "lstm", "gru_keras", "spam", "spam_rnn"),
}


def in_ci_matrix(model: str, runtime: str) -> bool:
    return model in WEBGPU_IN_CI.get(runtime, MODELS)


@pytest.fixture(scope="module")
def matrix(node_runtime, small_models):
    """Every registry model x every installed browser path (webgpu: WEBGPU_IN_CI)."""
    subjects = {name: subject_from_folder(small_models / name) for name in MODELS}
    runtimes = [rt for rt in BROWSER_RUNTIMES.values() if not browser_missing(rt.backend)]
    # One verify run per set of models, so each path runs only its models.
    groups: dict[tuple[str, ...], list] = {}
    for rt in runtimes:
        groups.setdefault(tuple(m for m in MODELS if in_ci_matrix(m, rt.name)), []).append(rt)
    results, runtime_info, samples = {}, {}, {}
    for models, rts in groups.items():
        report = verify([subjects[m] for m in models], rts, SAMPLES)
        results.update({(r.model, r.runtime): r for r in report.results})
        runtime_info.update(report.runtimes)
        samples.update(report.samples)
    return SimpleNamespace(runtimes=runtime_info, samples=samples), results


@pytest.mark.parametrize("runtime", list(BROWSER_RUNTIMES))
@pytest.mark.parametrize("model", list(MODELS))
def test_browser_path_matches_python(matrix, model, runtime):
    require_browser(BROWSER_RUNTIMES[runtime].backend)
    if not in_ci_matrix(model, runtime):
        pytest.skip(f"{runtime} takes seconds per time step here: run by `make verify`")
    report, results = matrix
    result = results[(model, runtime)]
    known = KNOWN_FAILURES.get((model, runtime))
    if known:
        assert result.status == "mismatch" and known in result.reason, result.reason
        return
    assert report.samples[model] == SAMPLES
    assert_passed(result, SAMPLES, TARGET, MODELS[model].task == "classification")


@pytest.mark.parametrize("backend", list(BROWSER_BACKENDS))
def test_each_path_reports_what_really_ran(matrix, backend):
    """The backend in use (tfjs falls back quietly: a mismatch fails the
    start), the browser's version, the renderer of WebGL and WebGPU, and our
    layers installed in the page."""
    require_browser(backend)
    report, _ = matrix
    info = report.runtimes[backend]
    bb = BROWSER_BACKENDS[backend]
    assert info["backend"] == info["requested_backend"] == bb.tfjs_backend
    assert info["browser"] == bb.browser
    version = {"chromium": "Chrome/", "firefox": "firefox/"}[bb.browser]
    assert info["browser_version"].startswith(version)
    assert info["tfjs"] == "4.22.0" and info["page_layers"] == "tfjs-bridge"
    assert {"GRU", "GRUCell", "LSTM", "Keras3HardSigmoid", "Conv1D"} <= set(info["bridge_layers"])
    if bb.tfjs_backend in ("webgl", "webgpu"):
        assert info["renderer"], info
    if bb.tfjs_backend == "webgl":
        # float16 render targets would cost ~3 digits: the figures need float32
        assert info["webgl_version"] == 2 and info["float32_render"] is True
    if bb.tfjs_backend == "wasm":
        assert info["wasm_simd"] is True
    # The headless exception: Firefox's WebGL exists only with a display.
    assert info["headless"] is (backend != "firefox-webgl")


# -- our layers in the page, from Node's own files --------------------------------


def _gru_keras_in_a_page(folder, monkeypatch, layers: str | None):
    if layers:
        monkeypatch.setenv("TFJS_BRIDGE_PAGE_LAYERS", layers)
    x = np.random.default_rng(3).random((6, 28, 28), dtype=np.float32)
    with NodeWorker("chromium-cpu", timeout=300) as worker:
        try:
            loaded = worker.load(folder, "layers")
        except NodeError as err:
            return worker.info, err, None
        (y,), _ = worker.predict(loaded["handle"], x)
        return worker.info, loaded, y


def test_the_page_runs_the_bundled_layers_and_stock_tfjs_cannot(
    node_runtime, small_models, monkeypatch
):
    """gru_keras is Keras's default GRU (reset_after=True): stock tfjs-layers
    refuses it. With the bundle (built from node/lib/layers) the page loads it
    into our classes and computes what Python does; the same page without the
    bundle's layers (the control) does not load it."""
    require_browser("chromium-cpu")
    folder = small_models / "gru_keras"
    info, loaded, y = _gru_keras_in_a_page(folder, monkeypatch, None)
    topology = json.loads((folder / "tfjs_layers" / "model.json").read_text())["modelTopology"]
    grus = [layer["config"]["name"] for layer in topology["model_config"]["config"]["layers"]
            if layer["class_name"] == "GRU"]  # fmt: skip
    assert loaded["bridge_layers"] == grus and len(grus) == 1
    assert "layers/gru_reset_after.js" in info["bundle"]
    assert "runtime/runners.js" in info["bundle"]
    # Only our files: the page's tf is the one tf.min.js gave it.
    assert all(f.startswith(("layers/", "runtime/", "browser/")) for f in info["bundle"])
    assert not any("tensorflow" in f for f in info["bundle"])

    stock_info, refused, _ = _gru_keras_in_a_page(folder, monkeypatch, "stock")
    assert stock_info["page_layers"] == "stock" and stock_info["bridge_layers"] == []
    assert isinstance(refused, NodeError), refused
    assert "reset_after" in str(refused).lower().replace("resetafter", "reset_after"), refused
    assert "\n" not in str(refused)
    x = np.random.default_rng(3).random((6, 28, 28), dtype=np.float32)
    from tfjs_bridge.parity.truth import KerasTruth

    (expected,) = KerasTruth(subject_from_folder(folder))([x])
    assert np.abs(y - expected).max() <= TARGET


# -- set-up, availability, the CLI ----------------------------------------------


def test_a_missing_browser_is_a_reason_not_a_crash(node_runtime, monkeypatch, tmp_path):
    monkeypatch.setenv("TFJS_BRIDGE_CHROMIUM", str(tmp_path / "no-chrome"))
    reason = browser_missing("chromium-wasm")
    assert reason == f"TFJS_BRIDGE_CHROMIUM={tmp_path / 'no-chrome'} is not an executable file"
    # The worker says the same, in one line; verify makes it a skip.
    with pytest.raises(NodeError) as err:
        NodeWorker("chromium-wasm", timeout=60)
    assert str(err.value).endswith(reason) and "\n" not in str(err.value)
    monkeypatch.delenv("TFJS_BRIDGE_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on PATH
    assert browser_missing("firefox-cpu") == (
        "firefox is not installed (firefox-esr or firefox not on PATH): run `make browser`,"
        " or set TFJS_BRIDGE_FIREFOX=/path/to/firefox"
    )


def test_a_users_own_browser_by_path(node_runtime, monkeypatch):
    require_browser("chromium-cpu")
    own = os.path.realpath(shutil.which("chromium") or shutil.which("google-chrome") or "")
    monkeypatch.setenv("TFJS_BRIDGE_CHROMIUM", own)
    assert browser_missing("chromium-cpu") is None
    with NodeWorker("chromium-cpu", timeout=300) as worker:
        assert worker.info["executable"] == own and worker.info["backend"] == "cpu"


def test_browser_paths_are_asked_for_by_name():
    assert [rt.name for rt in resolve_runtimes(["firefox-webgl"])] == [
        "firefox-webgl/layers",
        "firefox-webgl/graph",
    ]
    assert len(resolve_runtimes(["chromium"])) == 8 and len(resolve_runtimes(["firefox"])) == 6
    # Never by default: a browser is a system package `make setup` leaves alone.
    assert not any(rt.name in BROWSER_RUNTIMES for rt in resolve_runtimes([]))


def test_make_browser_is_idempotent():
    if any(browser_missing(b) for b in BROWSER_BACKENDS) or shutil.which("dpkg-query") is None:
        pytest.skip("the browsers are not all installed from Debian packages here")
    proc = subprocess.run(["make", "--no-print-directory", "browser"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "browser: already installed: chromium firefox-esr xvfb"


def test_bench_times_a_browser_path(node_runtime, small_models):
    """bench treats a browser like any other worker: timings measured in the
    page, and the browser's memory (all of its processes)."""
    from tfjs_bridge.bench.routes import bench

    require_browser("chromium-wasm")
    subject = subject_from_folder(small_models / "lstm_sine")
    runtime = BROWSER_RUNTIMES["chromium-wasm/layers"]
    report = bench([subject], [runtime], [1, 8], budget_s=0.2)
    timings = [t for t in report.timings if t.route == runtime.name]
    assert [t.batch for t in timings] == [1, 8] and all(t.ms for t in timings)
    assert report.peak_rss["node/chromium-wasm"] > 100 * 2**20
    assert report.node["chromium-wasm"]["backend"] == "wasm"


# -- full size (`make verify`) -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["chromium-webgl", "chromium-wasm"])
def test_every_mnist_digit_agrees_in_the_browser(node_runtime, backend):
    """Issue #14's target: 10,000 / 10,000 digits agree on chromium/webgl and
    chromium/wasm, for the full-trained gru (shared_models/)."""
    require_browser(backend)
    folder = MODELS_DIR / "gru"
    if not (folder / "tfjs_graph" / "model.json").exists():
        pytest.fail("no converted gru: run `make train convert`")
    runtimes = [rt for rt in BROWSER_RUNTIMES.values() if rt.backend == backend]
    report = verify([subject_from_folder(folder)], runtimes, samples=None)
    print(json.dumps([r.to_json() for r in report.results], indent=1))
    for r in report.results:
        assert r.status == "pass", r.reason
        assert r.figures["argmax_agree"] == r.figures["argmax_total"] == 10_000
        assert r.figures["max_abs"] <= TARGET


@pytest.mark.slow
def test_webgpu_runs_every_model(node_runtime):
    """chromium-webgpu on the pairs `make test` leaves out (WEBGPU_IN_CI), on
    the full-trained models: within the target but for the known failures."""
    require_browser("chromium-webgpu")
    left = [(m, rt) for rt in BROWSER_RUNTIMES.values() if rt.backend == "chromium-webgpu"
            for m in MODELS if not in_ci_matrix(m, rt.name)]  # fmt: skip
    for model, rt in left:
        folder = MODELS_DIR / model
        if not (folder / "tfjs_graph" / "model.json").exists():
            pytest.fail(f"no converted {model}: run `make train convert`")
        (result,) = verify([subject_from_folder(folder)], [rt], SAMPLES).results
        print(result.to_json())
        known = KNOWN_FAILURES.get((model, rt.name))
        assert (result.status == "mismatch") if known else (result.status == "pass"), result.reason
