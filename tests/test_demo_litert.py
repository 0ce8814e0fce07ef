"""The demo page's runtime switch (issue #25, deliver 3): `gru` on LiteRT.js's
WASM accelerator in a real headless Chromium, from a folder whose .tflite
verify passed on `chromium-litert-wasm/tflite`; the page starts on that path
(the fastest verified browser path parity.json records) and its answers for
real MNIST test digits are Keras's. Controls: the .tflite with one kernel
scaled (sha256 re-recorded, parity.json still claiming a pass) gives answers
the check rejects, and not re-recorded the demo refuses to start; a folder
without a .tflite, or with an unverified one, offers LiteRT.js disabled with
the reason. Without Chromium: a skip with the reason (a failure under CI=true)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from test_browser import require_browser
from test_demo import demo_check
from test_tflite import TFLITE_FILE, _scale_a_kernel
from tfjs_bridge.conversion.convert import convert
from tfjs_bridge.core.paths import NODE_DIR
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import record_parity, verify
from tfjs_bridge.runtime.runtimes import ENGINE_RUNTIMES
from tfjs_bridge.training.demo_examples import write_demo_examples

LITERT = ENGINE_RUNTIMES["chromium-litert-wasm/tflite"]
ATOL = 1e-5  # the spec's; LiteRT.js WASM matched Keras within 2.1e-7 (docs/runtimes.md)
EXAMPLES = 3  # MNIST test digits, through the page's "try an example"
SAMPLES = 32  # verify's, before the page may offer the path


@pytest.fixture(scope="module")
def verified_root(small_models, tmp_path_factory):
    """A models folder holding the small gru with a .tflite that verify
    passed on LiteRT.js WASM (recorded in its parity.json), and the small
    lstm_sine with none."""
    require_browser(LITERT.backend)
    root = tmp_path_factory.mktemp("demo-litert") / "models"
    for name in ("gru", "lstm_sine"):
        shutil.copytree(small_models / name, root / name)
    convert(root / "gru", ("tflite",))
    subjects = [subject_from_folder(root / "gru")]
    checked = verify(subjects, [LITERT], SAMPLES)
    (result,) = checked.results
    assert result.status == "pass", result.reason
    record_parity(checked, subjects)
    return root


def _drive(root: Path, runtime: str | None, tmp: Path) -> dict | str:
    """node demo.js on `root`, driven by demo-check.js on `runtime`: the page's
    answers (runtime None: the server's /models.json, no browser), or the
    demo's stderr when it refused to start."""
    examples = []
    if runtime is not None:
        examples = ["--examples", str(write_demo_examples(root, tmp / "ex.json", EXAMPLES))]
    server = subprocess.Popen(
        ["node", str(NODE_DIR / "demo.js"), "--models", str(root), "--port", "0", *examples],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stdout.readline()
        if not line.startswith("demo: http://127.0.0.1:"):
            server.wait(timeout=30)
            return server.stderr.read()
        if runtime is None:
            with urllib.request.urlopen(f"{line.split()[1]}models.json", timeout=30) as reply:
                return json.loads(reply.read())
        return demo_check(line.split()[1], "--runtime", runtime, "--backend", "wasm",
                          "--examples", EXAMPLES)  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


def _errors(answers: dict) -> np.ndarray:
    """Max |page - Keras| per gru example the page was asked."""
    return np.array(
        [np.abs(np.subtract(e["page"], e["keras"])).max() for e in answers["examples"]["gru"]]
    )


def test_gru_runs_on_litert_in_the_demo_and_gets_kerass_answer(verified_root, tmp_path):
    answers = _drive(verified_root, "litert", tmp_path)
    print(json.dumps({k: answers[k] for k in ("started", "runtime", "litert_option")}))
    # It started on the recorded path (verified, not yet timed: the only one).
    assert answers["started"]["default_path"] == LITERT.name
    assert answers["litert_option"]["disabled"] is False
    no_tflite = "lstm_sine: no tflite: run `tfjs-bridge convert lstm_sine --format tflite`"
    assert answers["litert_option"]["title"] == f"gru: verified .tflite\n{no_tflite}"
    assert answers["runtime"] == {"runtime": "litert", "backend": "wasm"}
    # What ran, as each panel says: LiteRT.js compiled for wasm; lstm_sine,
    # which has no .tflite, on tfjs, with the reason.
    assert answers["shown"]["gru-meta"].startswith("LiteRT.js · backend wasm · last prediction")
    assert answers["shown"]["lstm_sine-meta"].startswith(
        f"tfjs · backend wasm (not LiteRT.js: {no_tflite.split(': ', 1)[1]}) · last prediction"
    )
    errors = _errors(answers)
    print("max |page - Keras| per digit", errors)
    assert len(errors) == EXAMPLES and errors.max() <= ATOL
    for example in answers["examples"]["lstm_sine"]:
        assert abs(example["page"] - example["keras"]) <= ATOL
    assert answers["page_errors"] == []


def test_a_wrong_weight_in_the_tflite_is_caught(verified_root, tmp_path, rerecord):
    """The control: one kernel scaled by 1.5. Re-recorded (parity.json still
    says pass), the page runs it and the answers are far from Keras's; not
    re-recorded, the demo refuses the file at start, in one line."""
    root = tmp_path / "models"
    shutil.copytree(verified_root / "gru", root / "gru")  # (gru alone: a smaller page)
    _scale_a_kernel(root / "gru" / TFLITE_FILE, 1.5)
    refused = _drive(root, "litert", tmp_path)
    assert isinstance(refused, str) and "sha256" in refused, refused
    assert refused.startswith("error: ") and refused.count("\n") == 1, refused
    rerecord(root / "gru", TFLITE_FILE)
    answers = _drive(root, "litert", tmp_path)
    assert answers["shown"]["gru-meta"].startswith("LiteRT.js · backend wasm")
    errors = _errors(answers)
    print("max |page - Keras| per digit, wrong weight", errors)
    assert errors.max() > 1e-3


def test_without_a_verified_tflite_litert_is_offered_disabled_with_the_reason(
    verified_root, tmp_path
):
    """gru's .tflite with its parity.json gone, or saying mismatch: the server
    offers no LiteRT.js for it, and says why (the page's option is disabled
    when no model has one, with these reasons as its title: the first test
    shows the page rendering lstm_sine's), and no recorded default path. (A
    pass offers it: the first test.)"""
    root = tmp_path / "models"
    shutil.copytree(verified_root / "gru", root / "gru")
    parity = json.loads((root / "gru" / "parity.json").read_text())
    (root / "gru" / "parity.json").unlink()
    described = _drive(root, None, tmp_path)["gru"]
    verify_it = "run `tfjs-bridge verify gru --runtime chromium-litert-wasm`"
    assert described["litert"] == {"why": f"unverified: {verify_it}"}
    assert described["page_path"] is None
    parity["results"][LITERT.name]["status"] = "mismatch"
    (root / "gru" / "parity.json").write_text(json.dumps(parity))
    described = _drive(root, None, tmp_path)["gru"]
    assert described["litert"] == {"why": f"mismatch on {LITERT.name}: {verify_it}"}


def test_bench_records_the_fastest_verified_browser_path(verified_root, tmp_path):
    """bench's per-target line: LiteRT.js timed in the page, its figure in
    parity.json, and the browser page's choice is that path at that figure.
    The control: the same record with the path's verdict a mismatch chooses
    nothing, and says what to run."""
    from tfjs_bridge.bench.routes import (
        bench_node,
        page_cold_starts,
        record_speed,
        target_choices,
        target_lines,
    )

    root = tmp_path / "models"
    shutil.copytree(verified_root / "gru", root / "gru")
    subject = subject_from_folder(root / "gru")
    report = bench_node([(subject, LITERT)], [1, 8], budget_s=0.2)
    record_speed(report, [subject])
    timed = report.get("gru", LITERT.name, 1).throughput
    page_cold_starts(report)
    cold = report.page_cold_start[("gru", LITERT.name)]
    print("cold start in the page", cold)
    assert cold["load_ms"] > 0 and cold["first_call_ms"] > 0 and cold["batch"] == 1
    targets = target_choices([subject])
    page = targets["gru"]["browser_page"]
    assert (page["runtime"], page["batch"]) == (LITERT.name, 1)
    assert page["samples_per_s"] == pytest.approx(timed)
    line = f"gru browser page: fastest verified path {LITERT.name} ({timed:,.0f} samples/s at B=1)"
    assert line in target_lines(targets)
    print(line)
    parity = json.loads((root / "gru" / "parity.json").read_text())
    parity["results"][LITERT.name]["status"] = "mismatch"
    (root / "gru" / "parity.json").write_text(json.dumps(parity))
    page = target_choices([subject])["gru"]["browser_page"]
    assert page["runtime"] is None and page["why"].startswith("unverified: run `tfjs-bridge verify")
