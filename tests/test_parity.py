"""Cross-runtime parity, CI-sized: every registry model x every Node path
(real converter, real Node processes, real backends) against Python."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from path_checks import assert_passed
from tfjs_bridge.cli import main
from tfjs_bridge.parity import compare
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import verify
from tfjs_bridge.runtime.runtimes import RUNTIMES, optional_missing, resolve_runtimes
from tfjs_bridge.training.registry import MODELS

SAMPLES = 300
TFJS_NODE_TARGET = 1e-5  # issue #4: max |error| on every tfjs-node path
# Any path: the outputs here are O(1), so atol + rtol*|python| (1e-5 + 1e-5*|python|)
# stays well below this; a path that drifts above it is wrong, whatever its tolerance.
ANY_PATH_MAX_ABS = 1e-4


AVAILABLE = [rt for rt in RUNTIMES.values() if not optional_missing(rt)]
# spam is verified on these same paths, with its real test mails and stricter
# checks, by test_spam.py: a second run here would cost CI a minute for nothing.
PARITY_MODELS = [name for name in MODELS if name != "spam"]


@pytest.fixture(scope="module")
def matrix(node_runtime, small_models):
    subjects = [subject_from_folder(small_models / name) for name in PARITY_MODELS]
    report = verify(subjects, AVAILABLE, SAMPLES)
    return report, {(r.model, r.runtime): r for r in report.results}


@pytest.mark.parametrize("runtime", list(RUNTIMES))
@pytest.mark.parametrize("model", PARITY_MODELS)
def test_node_path_matches_python(matrix, model, runtime):
    missing = optional_missing(RUNTIMES[runtime])
    if missing:
        pytest.skip(missing)  # an optional extra, never installed by `make test`
    report, results = matrix
    result = results[(model, runtime)]
    classification = MODELS[model].task == "classification"
    if classification:
        assert report.samples[model] == SAMPLES
    tfjs_node = runtime.startswith("tfjs-node/")
    max_abs = TFJS_NODE_TARGET if tfjs_node else ANY_PATH_MAX_ABS
    figures = assert_passed(result, report.samples[model], max_abs, classification)
    if classification:
        assert figures["accuracy_node"] == figures["accuracy_python"]


def test_report_records_versions_and_tolerances(matrix, tmp_path):
    from tfjs_bridge.parity.report import read_report, write_report

    report, _ = matrix
    written = write_report(report, tmp_path)
    assert [p.name for p in written] == ["report.json", "errors.png"]
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = read_report(tmp_path)
    assert saved["ok"] is True
    assert saved["versions"]["converter"]["tensorflowjs"] == "4.22.0"
    assert saved["versions"]["node"]["tensorflow"]["tensorflow"] == "2.19.0"
    assert saved["versions"]["node"]["wasm"]["backend"] == "wasm"
    assert saved["tolerances"]["gru"] == {"atol": 1e-5, "rtol": 1e-5}
    assert len(saved["results"]) == len(PARITY_MODELS) * len(AVAILABLE)


# -- the comparison rules themselves ------------------------------------------


def _compare(expected, got, **kw):
    return compare.compare([expected], [got], ["y"], kw.pop("names", ["y"]), 1e-5, 1e-5, **kw)


def test_compare_passes_identical_outputs():
    y = np.random.default_rng(0).random((4, 3), dtype=np.float32)
    result = _compare(y, y.copy())
    assert result["passed"] and result["max_abs"] == 0 and result["outside"] == 0


def test_compare_finds_one_value_off_and_says_where():
    y = np.zeros((4, 6, 3), dtype=np.float32)
    got = y.copy()
    got[2, 5, 1] = 1e-3
    result = _compare(y, got)
    assert not result["passed"] and result["outside"] == 1
    assert result["outputs"][0]["first_outside"][0]["index"] == [2, 5, 1]
    per_step = result["outputs"][0]["max_abs_per_timestep"]
    assert per_step[5] == pytest.approx(1e-3) and max(per_step[:5]) == 0


@pytest.mark.parametrize(
    "got, names, reason",
    [
        (np.zeros((4, 3), np.float32), ["z"], "output names"),
        (np.zeros((4, 2), np.float32), ["y"], "float32[4, 2]"),
        (np.zeros((4, 3), np.float64), ["y"], "float64"),
        (np.full((4, 3), np.nan, np.float32), ["y"], "12 of 12 values outside"),
    ],
    ids=["name", "shape", "dtype", "nan"],
)
def test_compare_refuses_mismatches(got, names, reason):
    result = _compare(np.zeros((4, 3), np.float32), got, names=names)
    assert not result["passed"] and reason in result["reason"]


def test_compare_fails_a_sequence_classifier_whose_argmax_flips_within_tolerance():
    """A return_sequences softmax [B, T, C]: every value within tolerance, but
    one timestep's near-tie goes the other way, so a class differs."""
    y = np.full((2, 3, 3), 0.1, np.float32)
    y[..., 0] = 0.8
    y[1, 2] = [0.45, 0.45 - 1e-6, 0.1]
    got = y.copy()
    got[1, 2] = [0.45 - 1e-6, 0.45, 0.1]
    result = _compare(y, got, classifier=True)
    assert result["outside"] == 0 and not result["passed"]
    assert (result["argmax_agree"], result["argmax_total"]) == (5, 6)
    assert result["disagreements"] == [[1, 2]]
    assert result["reason"].startswith("argmax differs at 1 of 6 positions")


def test_at_reduced_precision_a_tie_the_tolerance_spans_is_counted_apart():
    """A float16 truth (tolerance ~2e-3) orders a near-tie by its own
    rounding: a path that orders it the other way, within tolerance, is not
    failed for it (found on a CPU with AVX-512 FP16, where Keras's float16
    softmax put one of 64 samples' top two 1.3e-4 apart). Controls: the same
    flip under the strict rule (a float32 truth) fails, and a flip beyond
    the tolerance fails."""
    y = np.float32([[0.7, 0.2, 0.1], [0.4006, 0.4, 0.1994]])
    got = np.float32([[0.7, 0.2, 0.1], [0.4, 0.4006, 0.1994]])

    def judge(e, g, tol, **kw):
        return compare.compare([e], [g], ["y"], ["y"], tol, tol, classifier=True, **kw)

    excused = judge(y, got, 2e-3, ties_excused=True)
    assert excused["passed"] and excused["argmax_ties"] == 1 and excused["disagreements"] == []
    strict = judge(y, got, 2e-3)
    assert not strict["passed"] and strict["reason"] == "argmax differs on 1 samples"
    # a flip within tolerance is always such a tie (the gap is at most the two
    # values' moves); one beyond it fails by its values, ties excused or not
    far = judge(y, np.float32([[0.7, 0.2, 0.1], [0.39, 0.41, 0.2]]), 2e-3, ties_excused=True)
    assert not far["passed"] and far["reason"] == "2 of 6 values outside tolerance"


def test_compare_checks_no_argmax_for_regression():
    y = np.random.default_rng(1).random((5, 4, 1), dtype=np.float32)
    result = _compare(y, y + 1e-6)
    assert result["passed"] and "reason" not in result
    assert not {"argmax_agree", "argmax_total", "disagreements"} & set(result)


def test_compare_counts_argmax_disagreements():
    y = np.float32([[0.6, 0.4], [0.2, 0.8]])
    got = np.float32([[0.6, 0.4], [0.8, 0.2]])
    result = _compare(y, got, classifier=True, labels=np.array([0, 1]))
    assert (result["argmax_agree"], result["disagreements"]) == (1, [1])
    assert (result["accuracy_python"], result["accuracy_node"]) == (1.0, 0.5)


def test_a_binary_classifier_agrees_on_p_above_one_half():
    """One sigmoid unit [B, 1]: its class is p > 0.5; a probability within
    tolerance that crosses 0.5 is a different answer, and accuracy is reported."""
    y = np.float32([[0.9], [0.2], [0.5 + 1e-7]])
    got = np.float32([[0.9], [0.2], [0.5 - 1e-7]])
    result = _compare(y, got, classifier=True, labels=np.array([1, 0, 1]))
    assert result["outside"] == 0 and not result["passed"]
    assert (result["argmax_agree"], result["disagreements"]) == (2, [2])
    assert (result["accuracy_python"], result["accuracy_node"]) == (1.0, 2 / 3)


def test_runtime_names_select_backends():
    assert [r.name for r in resolve_runtimes(["tfjs-wasm"])] == [
        "tfjs-wasm/layers",
        "tfjs-wasm/graph",
    ]
    result = CliRunner().invoke(main, ["verify", "--runtime", "tfjs-gpu"])
    assert result.exit_code == 2 and "unknown runtime 'tfjs-gpu'" in result.output


# -- never silent ----------------------------------------------------------------


def test_verify_catches_a_model_that_computes_something_else(
    node_runtime, small_models, tmp_path, rerecord
):
    """gru_keras's converted layers model, edited to tfjs's default hard sigmoid
    (what a hand-written port would use): it still loads and runs, and verify fails it."""
    import shutil

    folder = tmp_path / "gru_keras"
    shutil.copytree(small_models / "gru_keras", folder)
    model_json = folder / "tfjs_layers" / "model.json"
    model = json.loads(model_json.read_text())
    gru = model["modelTopology"]["model_config"]["config"]["layers"][1]["config"]
    assert gru["recurrent_activation"] == "sigmoid"
    gru["recurrent_activation"] = "hard_sigmoid"
    model_json.write_text(json.dumps(model))
    rerecord(folder, "tfjs_layers/model.json")
    result = CliRunner().invoke(
        main, ["verify", "--model-dir", str(folder), "--runtime", "tfjs-node/layers",
               "--samples", "100", "--report", str(tmp_path / "report")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "error: 1 of 1 paths did not pass: gru_keras tfjs-node/layers" in result.output
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    (only,) = saved["results"]
    assert only["status"] == "mismatch" and only["outside"] > 0 and only["max_abs"] > 1e-3


def test_verify_also_predicts_one_sample_at_a_time(node_runtime, small_models, monkeypatch):
    """A batch of one can take another code path (the fast RNN loop on the
    pure-JS and WASM backends): a runtime that is right in chunks and wrong one
    sample at a time fails verify."""
    from tfjs_bridge.runtime.worker_process import NodeWorker

    real_predict = NodeWorker.predict

    def off_by_one_sample(self, handle, xs, names=None):
        ys, timing = real_predict(self, handle, xs, names)
        return ([y + 1e-3 for y in ys] if len(xs[0]) == 1 else ys), timing

    subject = subject_from_folder(small_models / "gru_keras")
    runtime = [RUNTIMES["tfjs-node/layers"]]
    assert verify([subject], runtime, 20).results[0].status == "pass"
    monkeypatch.setattr(NodeWorker, "predict", off_by_one_sample)
    (result,) = verify([subject], runtime, 20).results
    assert result.status == "mismatch"
    assert (
        result.reason.startswith("one sample at a time: ") and "outside tolerance" in result.reason
    )
