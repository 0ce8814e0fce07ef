"""verify judges a path by what the truth itself can be asked for: a model
that computes in float16 by the tolerance of float16 (a float32 Node path
must not fail it for being more precise), and a model that is ill-conditioned
at the inputs (Keras moves beyond the tolerance when its inputs move by one
ulp) on the values where Keras is steady, and on a prefix of steps short
enough to be well-conditioned (the step check). All with negative controls:
the same models with one wrong weight in the path's files still fail."""

import json
import shutil

import numpy as np
import pytest

from test_user_models import _run
from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.folder.signature import InputSpec, Signature, float_input
from tfjs_bridge.parity import compare
from tfjs_bridge.parity.conditioning import nudged

F16 = 2.0**-10

# -- the rules (pure numpy) ---------------------------------------------------------


def test_the_tolerance_follows_the_precision_the_truth_computes_in():
    assert compare.precision_tolerance("float32", 0, 1e-5, 1e-5) == (1e-5, 1e-5)
    assert compare.precision_tolerance("float16", 2, 1e-5, 1e-5) == (2 * F16, 2 * F16)
    assert compare.precision_tolerance("bfloat16", 3, 1e-5, 1e-5) == (3 * 2.0**-7,) * 2
    # never tighter than the spec's
    assert compare.precision_tolerance("float16", 1, 0.1, 1e-5) == (0.1, F16)


def _chaotic(rng, steps=50, blowup=20):
    """(truth, nudged truth): a sequence whose own one-ulp move grows
    tenfold per step from 1e-9, passing the tolerance at step 4."""
    e = rng.uniform(-1, 1, (8, steps, 3))
    grows = 1e-9 * 10.0 ** np.minimum(np.arange(steps), blowup)[None, :, None]
    return e, e + grows * rng.choice([-1, 1], e.shape)


def test_a_path_on_an_ill_conditioned_truth_is_judged_where_the_truth_is_steady():
    rng = np.random.default_rng(0)
    e, moved = _chaotic(rng, steps=20)
    # a path that differs as much as Keras itself does: judged on steps 0-2
    got = e + 2 * (moved - e)
    found = compare.conditioning([e], [got], [moved], 1e-5, 1e-5, 2.0**-23)
    assert found["verdict"] == "pass" and found["reason"].startswith("ill-conditioned: judged")
    assert found["judged"] == 8 * 3 * 3 and found["keras_outside"] > 0
    assert found["keras_moves"] > 1
    # negative control: wrong at step 1, where Keras is steady
    wrong = got.copy()
    wrong[:, 1] += 1e-3
    found = compare.conditioning([e], [wrong], [moved], 1e-5, 1e-5, 2.0**-23)
    assert found["verdict"] == "mismatch" and found["outside_judged"] == 8 * 3


def test_too_little_steady_truth_is_refused_and_a_steady_truth_keeps_the_plain_verdict():
    rng = np.random.default_rng(1)
    e, moved = _chaotic(rng, steps=50)  # 3 steady steps of 50: under MIN_JUDGED
    found = compare.conditioning([e], [e + 2 * (moved - e)], [moved], 1e-5, 1e-5, 2.0**-23)
    assert found["verdict"] == "refused" and "ill-conditioned at these inputs" in found["reason"]
    # a batch of one after batches that passed: any steady value will do, but one is needed
    path = e + 2 * (moved - e)
    found = compare.conditioning([e], [path], [moved], 1e-5, 1e-5, 2.0**-23, min_judged=0)
    assert found["verdict"] == "pass" and found["judged"] == 8 * 3 * 3
    found = compare.conditioning([e[:, 5:]], [path[:, 5:]], [moved[:, 5:]], 1e-5, 1e-5, 2.0**-23,
                                 min_judged=0)  # fmt: skip
    assert found["verdict"] == "refused" and found["judged"] == 0
    # a steady truth: a path outside tolerance stays a plain mismatch
    steady = e + 1e-9
    found = compare.conditioning([e], [e + 1e-3], [steady], 1e-5, 1e-5, 2.0**-23)
    assert found["verdict"] is None and found["keras_outside"] == 0
    # NaN and Inf where Keras gives them again are no move of its own
    special = np.array([[np.nan, np.inf, 1.0]])
    found = compare.conditioning([special], [special + [[0, 0, 1]]], [special.copy()], 1e-5,
                                 1e-5, 2.0**-23)  # fmt: skip
    assert found["verdict"] is None and found["keras_moves"] == 0 and found["outside_judged"] == 1


def test_a_classifier_is_judged_on_its_argmax_where_the_truth_is_steady():
    e = np.array([[0.1, 0.9], [0.6, 0.4], [0.45, 0.55]])
    moved = e + np.array([[0, 0], [0, 0], [0.2, -0.2]])  # the last sample is a coin toss
    flipped = e[:, ::-1].copy()
    flipped[1] = e[1]
    flipped[0] = e[0] + 1e-9
    found = compare.conditioning([e], [flipped], [moved], 1e-5, 1e-5, 2.0**-23, classifier=True)
    assert found["verdict"] == "pass"  # only the coin toss flipped
    flipped[1] = e[1, ::-1]
    found = compare.conditioning([e], [flipped], [moved], 1e-5, 1e-5, 2.0**-23, classifier=True)
    assert found["verdict"] == "mismatch" and found["argmax_differ_judged"] == 1


def test_nudging_moves_floats_only_and_keeps_padding():
    rng = np.random.default_rng(2)
    floats = rng.uniform(-1, 1, (4, 6, 2)).astype(np.float32)
    floats[:, :2] = -1.0  # padded steps (Masking(mask_value=-1))
    floats[0, 3] = 0.0
    ids = rng.integers(0, 9, (4, 6)).astype(np.int32)
    signature = Signature(
        inputs=(
            float_input("x", (6, 2), mask_value=-1.0),
            InputSpec("t", "int32", (6,), "tokens", 0, 9),
        ),
        outputs=("y",),
    )
    x, t = nudged([floats, ids], signature, 2.0**-23, seed=0)
    assert x.dtype == np.float32 and np.array_equal(t, ids)
    assert np.array_equal(x[:, :2], floats[:, :2]) and np.array_equal(x[0, 3], floats[0, 3])
    real = floats[:, 2:] != 0
    changed = x[:, 2:][real] != floats[:, 2:][real]
    assert changed.mean() > 0.95  # one ulp: a float32 moves unless rounding takes it back
    assert np.abs(x[:, 2:][real] / floats[:, 2:][real] - 1).max() <= 2.5e-7


def test_the_precision_is_read_from_the_dtype_policy():
    import_tensorflow()
    import keras
    import tf_keras

    from tfjs_bridge.parity.truth import compute_precision

    for K in (keras, tf_keras):
        for policy, expected in (("float32", ("float32", 0)), ("mixed_float16", ("float16", 3)),
                                 ("mixed_bfloat16", ("bfloat16", 3))):  # fmt: skip
            K.mixed_precision.set_global_policy(policy)
            try:
                model = K.Sequential([
                    K.Input((5, 2)), K.layers.Bidirectional(K.layers.GRU(3)), K.layers.Dense(2),
                    K.layers.Activation("softmax", dtype="float32"),
                ])  # fmt: skip
            finally:
                K.mixed_precision.set_global_policy("float32")
            assert compute_precision(model) == expected, (K.__name__, policy)


# -- real models through the converter and Node -------------------------------------


def _fault(folder, rerecord, weight: str, factor: float, name: str):
    """A copy of the model folder whose layers weights have `weight`'s largest
    element scaled, its sha256 re-recorded as a converter that wrote a wrong
    model would: only the numbers can tell."""
    faulted = folder.parent / name
    shutil.copytree(folder, faulted)
    manifest = json.loads((faulted / "manifest.json").read_text())
    manifest["model"] = manifest["spec"]["name"] = name
    (faulted / "manifest.json").write_text(json.dumps(manifest))
    layers = faulted / "tfjs_layers"
    (group,) = json.loads((layers / "model.json").read_text())["weightsManifest"]
    (shard,) = group["paths"]
    values = np.frombuffer((layers / shard).read_bytes(), np.float32).copy()
    at = 0
    for w in group["weights"]:
        size = int(np.prod(w["shape"]))
        if w["name"].endswith(weight):
            part = values[at : at + size]
            part[np.argmax(np.abs(part))] *= factor
            break
        at += size
    else:
        raise AssertionError(f"no weight {weight}")
    (layers / shard).write_bytes(values.tobytes())
    rerecord(faulted, f"tfjs_layers/{shard}")
    return faulted


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A Keras 3 GRU under mixed_float16 (its head too: the outputs are
    float16), and a tf-keras GRU(64) returning its last output whose
    recurrent weights are scaled up 16x, chaotic over its 40 steps; each
    exported as users export."""
    import_tensorflow()
    import keras
    import tf_keras

    root = tmp_path_factory.mktemp("precision")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(7)
        keras.Sequential([
            keras.Input((12, 4)), keras.layers.GRU(32),
            keras.layers.Dense(5, activation="softmax", name="head"),
        ]).save(root / "mixed.keras")  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy("float32")

    tf_keras.utils.set_random_seed(8)
    chaos = tf_keras.Sequential([
        tf_keras.Input((40, 3)), tf_keras.layers.GRU(64), tf_keras.layers.Dense(2),
    ])  # fmt: skip
    kernel, recurrent, bias = chaos.layers[0].get_weights()
    chaos.layers[0].set_weights([kernel, 16 * recurrent, bias])
    chaos.save(root / "chaos.h5")

    folders = {}
    for name, source in (("mixed", "mixed.keras"), ("chaos", "chaos.h5")):
        result = _run("export", root / source, root / name)
        assert result.exit_code == 0, result.output
        folders[name] = root / name
    return folders


def test_a_float16_model_is_judged_at_float16_precision(node_runtime, exported, rerecord, tmp_path):
    folder = exported["mixed"]
    faulted = _fault(folder, rerecord, "head/kernel", 1.5, "mixed_faulted")
    result = _run("verify", "--model-dir", folder, "--model-dir", faulted, "--samples", 64,
                  "--runtime", "tfjs-node/layers", "--runtime", "tfjs-node/saved_model",
                  "--report", tmp_path)  # fmt: skip
    assert result.exit_code == 1, result.output  # the faulted model
    saved = json.loads((tmp_path / "report.json").read_text())
    tol = saved["tolerances"]["mixed"]
    assert (tol["precision"], tol["precision_layers"], tol["atol"]) == ("float16", 2, 2 * F16)
    said = "pass at float16 precision, tol 2.0e-03 = 2 layers x float16's epsilon 9.8e-04"
    by = {(r["model"], r["runtime"]): r for r in saved["results"]}
    layers, saved_model = by["mixed", "tfjs-node/layers"], by["mixed", "tfjs-node/saved_model"]
    # tfjs-layers computes in float32: more precise than Keras, beyond the spec's 1e-5
    assert layers["status"] == "pass" and layers["reason"] == said
    assert 1e-5 < layers["max_abs"] < 2 * F16
    assert saved_model["status"] == "pass" and saved_model["max_abs"] == 0  # the same float16 graph
    printed = " ".join(result.output.split())
    assert f"mixed tfjs-node/layers: {said}" in printed
    assert (
        "3 passed, 1 mismatched, 0 unsupported, 0 refused, 0 skipped (mixed, mixed_faulted "
        "at float16 precision)" in printed
    )
    # negative control: one wrong weight in the layers files
    wrong = by["mixed_faulted", "tfjs-node/layers"]
    assert wrong["status"] == "mismatch" and wrong["max_abs"] > 4 * F16
    assert wrong["reason"].endswith("outside tolerance (at float16 precision, tol 2.0e-03 = "
                                    "2 layers x float16's epsilon 9.8e-04)")  # fmt: skip
    assert wrong["conditioning"]["verdict"] is None  # Keras is steady there: a plain mismatch
    assert by["mixed_faulted", "tfjs-node/saved_model"]["status"] == "pass"


def test_an_ill_conditioned_model_is_step_checked_and_a_wrong_weight_fails_the_check(
    node_runtime, exported, rerecord, tmp_path
):
    """Only the last output after 40 chaotic steps: no value is steady, so
    the outputs tell nothing, and the prefix check alone decides the exit
    code. The model is fixed to 40 steps: Keras is rebuilt with its time
    axis freed, the layers model loaded so, and the stream steps any length.
    The stream path is compared on every prefix (parity/every_prefix.py):
    too few steady values to judge it by either, but its steady early
    prefixes show the wrong weight outright."""
    folder = exported["chaos"]
    faulted = _fault(folder, rerecord, "recurrent_kernel", 1.5, "chaos_faulted")
    results, printed = {}, {}
    for model in (folder, faulted):
        report = tmp_path / model.name
        result = _run("verify", "--model-dir", model, "--samples", 32,
                      "--runtime", "tfjs-node/layers", "--runtime", "tfjs-node/stream",
                      "--report", report)  # fmt: skip
        saved = json.loads((report / "report.json").read_text())["results"]
        results[model.name] = {r["runtime"]: r for r in saved}
        printed[model.name] = (result.exit_code, " ".join(result.output.split()))
    code, said = printed["chaos"]
    assert code == 0, said
    for runtime, right in results["chaos"].items():
        found, step = right["conditioning"], right["step_check"]
        assert right["status"] == "ill-conditioned", (runtime, right["reason"])
        assert right["reason"].startswith("ill-conditioned: Keras moves by up to")
        # Keras itself moves by more than the outputs' own scale under one float32 ulp
        assert found["input_change"] == 2.0**-23 and found["keras_moves"] > 0.5
        assert found["judged"] < 0.1 * found["elements"] and right["outside"] > 0
        assert (step["check"], step["verdict"], step["of_steps"], step["samples"]) == (
            "prefix", "pass", 40, 32)  # fmt: skip
        assert 2 <= step["steps"] < 40 and step["keras_moves"] <= 0.1 * 1e-5
        assert step["outside"] == 0 and step["max_abs"] <= 1e-5
        assert step["tried"]["20"] > 1e-5  # halved from 40 until Keras is steady
        assert f"prefix check pass: the first {step['steps']} of 40 steps, 32 samples" in (
            right["reason"])  # fmt: skip
    assert "2 ill-conditioned (step check: 2 pass)" in said
    # negative control: one recurrent weight 1.5x in the layers files, which both paths read
    code, said = printed["chaos_faulted"]
    assert code == 1, said
    for runtime, wrong in results["chaos_faulted"].items():
        if runtime == "tfjs-node/stream":  # the fault on the prefixes where Keras is steady
            assert wrong["status"] == "mismatch", wrong["reason"]
            assert wrong["conditioning"]["verdict"] == "mismatch", wrong["conditioning"]
            assert wrong["reason"].endswith("where Keras is well-conditioned differ beyond "
                                            f"tolerance (ill-conditioned elsewhere: "
                                            f"{wrong['conditioning']['moves']})")  # fmt: skip
            continue
        step = wrong["step_check"]
        assert wrong["status"] == "ill-conditioned", (runtime, wrong["reason"])
        assert step["verdict"] == "mismatch" and step["outside"] > 0 and step["max_abs"] > 1e-4
        assert "prefix check mismatch: the first" in wrong["reason"]
    assert ("0 passed, 1 mismatched, 0 unsupported, 0 refused, 1 ill-conditioned "
            "(step check: 1 mismatch), 0 skipped") in said  # fmt: skip
    assert "error: 2 of 2 paths did not pass" in said
