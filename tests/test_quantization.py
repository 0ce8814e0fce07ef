"""convert --quantize (the converter's float16/uint8/uint16 options) and what
verify makes of it: a quantized path is judged by its budget (accuracy drop
for classifiers, relative error otherwise) and its sizes are reported; a
quantized model past its budget fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np

from tfjs_bridge.conversion import quantization
from tfjs_bridge.conversion.convert import convert

CLI = [sys.executable, "-m", "tfjs_bridge.cli"]
NODE_PATHS = ["--runtime", "tfjs-node/layers", "--runtime", "tfjs-node/graph"]


def _quantized(small_models, tmp_path, name, dtype):
    root = tmp_path / "models"
    shutil.copytree(small_models / name, root / name)
    convert(root / name, ("layers", "graph"), quantize=dtype)
    return root


def _verify(root, name, *extra):
    report = root.parent / "report"
    result = subprocess.run(
        [*CLI, "verify", name, "--out", root, *NODE_PATHS, "--report", report, *map(str, extra)],
        capture_output=True,
        text=True,
    )
    results = json.loads((report / "report.json").read_text())["results"]
    return result, {r["runtime"]: r for r in results}


def test_float16_halves_the_weights_and_passes_its_budget(small_models, tmp_path):
    root = _quantized(small_models, tmp_path, "gru", "float16")
    manifest = json.loads((root / "gru" / "manifest.json").read_text())
    layers = manifest["conversions"]["layers"]
    assert layers["quantize"] == "float16" and "--quantize_float16=*" in layers["args"]
    assert layers["weight_bytes"] * 2 == layers["float32_weight_bytes"] == 18_506 * 4
    result, paths = _verify(root, "gru", "--samples", 2000)
    assert result.returncode == 0, result.stdout + result.stderr
    q = paths["tfjs-node/layers"]["quantization"]
    assert q["dtype"] == "float16" and q["smaller"] == 2.0
    assert q["max_accuracy_drop_pp"] == quantization.MAX_ACCURACY_DROP_PP
    assert "float16 weights, 37,012 bytes against 74,024 as float32" in result.stdout
    # Quantized weights do not meet 1e-5: the budget, not the tolerance, passed it.
    assert paths["tfjs-node/layers"]["max_abs"] > 1e-5


def test_a_regressor_is_held_to_a_relative_error(small_models, tmp_path):
    root = _quantized(small_models, tmp_path, "lstm_sine", "uint16")
    result, paths = _verify(root, "lstm_sine", "--samples", 500)
    assert result.returncode == 0, result.stdout + result.stderr
    q = paths["tfjs-node/graph"]["quantization"]
    assert q["dtype"] == "uint16" and paths["tfjs-node/graph"]["max_abs"] <= q["max_abs_allowed"]


def test_a_quantized_model_past_its_budget_fails(small_models, tmp_path, rerecord):
    # The negative control: a uint8 model whose GRU kernel dequantizes with a
    # wrong scale (as a broken quantizer would write it) loses accuracy.
    root = _quantized(small_models, tmp_path, "gru", "uint8")
    model_json = root / "gru" / "tfjs_layers" / "model.json"
    model = json.loads(model_json.read_text())
    for weight in model["weightsManifest"][0]["weights"]:
        if weight["name"].endswith("gru_cell/kernel"):
            weight["quantization"]["scale"] *= 3
    model_json.write_text(json.dumps(model))
    rerecord(root / "gru", "tfjs_layers/model.json")
    result, paths = _verify(root, "gru", "--samples", 2000)
    assert result.returncode == 1
    assert paths["tfjs-node/layers"]["status"] == "mismatch"
    assert "uint8: accuracy drops" in paths["tfjs-node/layers"]["reason"]
    assert paths["tfjs-node/graph"]["status"] == "pass"  # untouched: within its budget
    # The budget is the user's to set.
    result, paths = _verify(root, "gru", "--samples", 2000, "--max-accuracy-drop", 100)
    assert result.returncode == 0, result.stdout + result.stderr


def test_judge_reads_the_budget():
    conversion = {"quantize": "uint8", "weight_bytes": 10, "float32_weight_bytes": 40}
    figures = {"outputs": [], "accuracy_python": 0.900, "accuracy_node": 0.894}
    passed, reason = quantization.judge(dict(figures), [], conversion, None)
    assert not passed and reason == "uint8: accuracy drops 0.60 pp (budget 0.5 pp)"
    assert quantization.judge(dict(figures), [], conversion, 1.0) == (True, "")
    # No labels: max |error| against 5 % of the largest output Python gave.
    expected = [np.array([[-2.0], [1.0]], dtype=np.float32)]  # largest |output|: 2
    within = {"outputs": [{}], "max_abs": 0.099}
    assert quantization.judge(within, expected, conversion, None) == (True, "")
    beyond = {"outputs": [{}], "max_abs": 0.101}
    passed, reason = quantization.judge(beyond, expected, conversion, None)
    assert not passed and reason.startswith("uint8: max |error| 1.01e-01 > 1.00e-01")


def test_quantize_refuses_onnx_in_one_line(small_models, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(small_models / "gru", root / "gru")
    before = (root / "gru" / "manifest.json").read_text()
    result = subprocess.run(
        [*CLI, "convert", "gru", "--format", "onnx", "--quantize", "uint8", "--out", root],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "not to onnx" in result.stderr
    assert (root / "gru" / "manifest.json").read_text() == before
