"""Every model a user brings gets a verdict from a closed set, per path
(pass, mismatch, unsupported, refused, ill-conditioned; skip when not run), in the table,
report.json and the exit code (0: no path mismatches and at least one
passes). Real Keras models built here, exported and converted by the real
tensorflowjs_converter, run by real Node: models that used to die with a
traceback, a format the converter refuses, Lambda layers, and a model whose
outputs cannot tell paths apart."""

import json
import re
import shutil

import numpy as np
import pytest

from test_user_models import _results, _run
from tfjs_bridge.core.errors import NodeError
from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.folder.parity_record import STATUSES
from tfjs_bridge.parity import probes
from tfjs_bridge.parity.verify import PathResult, VerifyReport, node_verdict

TFJS_NODE = {"tfjs-node/layers", "tfjs-node/graph", "tfjs-node/saved_model",
             "tfjs-node/saved_model_xla"}  # fmt: skip


def _report(*results) -> VerifyReport:
    """(model, runtime, status), or "ill-conditioned/STEP" for an
    ill-conditioned path whose step check says STEP."""
    made = []
    for model, runtime, status in results:
        status, _, step = status.partition("/")
        figures = {"step_check": {"verdict": step}} if step else {}
        made.append(PathResult(model, runtime, status, figures=figures))
    return VerifyReport(results=made, samples={}, tolerances={}, runtimes={}, python={})


def _verdicts(report_dir) -> dict[str, str]:
    return {runtime: r["status"] for runtime, r in _results(report_dir).items()}


# -- the closed set and the exit code ----------------------------------------------


def test_the_verdicts_are_a_closed_set_and_decide_the_exit_code():
    assert STATUSES == ("pass", "mismatch", "unsupported", "refused", "ill-conditioned", "skip")
    ok = [
        [("m", "a", "pass")],
        [("m", "a", "pass"), ("m", "b", "unsupported"), ("m", "c", "skip")],
        [("m", "a", "pass"), ("n", "a", "pass"), ("n", "b", "unsupported")],
        # ill-conditioned: the step check proves the path, or proves nothing
        [("m", "a", "ill-conditioned/pass")],
        [("m", "a", "ill-conditioned/pass"), ("m", "b", "ill-conditioned/unavailable")],
    ]
    not_ok = [
        [],
        [("m", "a", "pass"), ("m", "b", "mismatch")],  # a mismatch is always a failure
        [("m", "a", "unsupported"), ("m", "b", "skip")],  # nothing verified
        [("m", "a", "refused"), ("m", "b", "refused")],
        [("m", "a", "pass"), ("n", "a", "unsupported")],  # every model needs a pass
        [("m", "a", "ill-conditioned/unavailable")],  # nothing proven
        [("m", "a", "pass"), ("m", "b", "ill-conditioned/mismatch")],  # a failed step check
    ]
    assert all(_report(*r).ok for r in ok)
    assert not any(_report(*r).ok for r in not_ok)
    report = _report(("m", "a", "pass"), ("m", "b", "unsupported"))
    assert report.to_json()["verdicts"] == {
        "m": {"pass": 1, "mismatch": 0, "unsupported": 1, "refused": 0, "ill-conditioned": 0,
              "skip": 0}
    }  # fmt: skip


def test_required_paths_must_pass_for_every_model():
    from tfjs_bridge.core.errors import BridgeError
    from tfjs_bridge.parity.commands import check_verified

    report = _report(("m", "tfjs-node/layers", "pass"), ("m", "tfjs-node/graph", "unsupported"),
                     ("n", "tfjs-node/layers", "pass"))  # fmt: skip
    check_verified(report)  # the rule alone: verified
    check_verified(report, ["tfjs-node/layers"])
    said = (r"^required paths did not pass: m tfjs-node/graph \(unsupported\), "
            r"n tfjs-node/graph \(not run\)$")  # fmt: skip
    with pytest.raises(BridgeError, match=said):
        check_verified(report, ["tfjs-node/graph"])
    with pytest.raises(BridgeError, match=r"n tfjs-node/saved_model_xla \(not run\)$"):
        check_verified(report, ["tfjs-node"])  # a backend: each of its paths
    # an ill-conditioned path counts as passed when its step check does
    stepped = _report(("m", "tfjs-node/layers", "ill-conditioned/pass"),
                      ("m", "tfjs-node/graph", "ill-conditioned/unavailable"))  # fmt: skip
    check_verified(stepped, ["tfjs-node/layers"])
    with pytest.raises(BridgeError, match=r": m tfjs-node/graph \(ill-conditioned\)$"):
        check_verified(stepped, ["tfjs-node/graph"])
    # an imported folder's results name the Keras side too
    imported = _report(("i", "tf-keras vs tfjs-node/layers", "pass"),
                       ("i", "keras3 vs tfjs-node/layers", "refused"))  # fmt: skip
    with pytest.raises(BridgeError, match=r": i keras3 vs tfjs-node/layers \(refused\)$"):
        check_verified(imported, ["tfjs-node/layers"])
    with pytest.raises(BridgeError, match="unknown runtime 'nope'"):
        check_verified(report, ["nope"])


@pytest.mark.parametrize(
    "message, status, reason",
    [
        ("node worker (tensorflow): Unknown layer: Attention. This may be due to one of the "
         "following reasons:\n1. The layer is defined in Python", "unsupported",
         "layer Attention: tfjs-layers has no class for it"),
        ("node worker (cpu): Cannot compute the outputs [Identity] from the provided inputs \n. "
         "Consider providing the following inputs: []. Alternatively, to avoid the dynamic ops, "
         "use model.execute() and specify the inputs [Identity]", "unsupported",
         "the graph model keeps dynamic ops (a While loop) the tfjs graph executor cannot run"),
        ("node worker (wasm): Kernel 'Softsign' not registered for backend 'wasm'", "unsupported",
         "op Softsign: the wasm backend has no kernel for it"),
        # an input missing is a feeding bug, not a model the path cannot hold
        ("node worker (cpu): Cannot compute the outputs [Identity] from the provided inputs [x]. "
         "Consider providing the following inputs: [y].", "mismatch", None),
        ("node worker (wasm): memory access out of bounds", "mismatch", None),
        ("node worker (tensorflow): sha256 of tfjs_layers/model.json does not match", "mismatch",
         None),
    ],
    ids=["unknown-layer", "while-loop", "missing-kernel", "missing-input", "crash", "tampered"],
)  # fmt: skip
def test_node_errors_are_unsupported_only_when_the_path_cannot_hold_the_model(
    message, status, reason
):
    got_status, got_reason = node_verdict(NodeError(message))
    assert got_status == status
    assert got_reason == (reason or message)
    assert "\n" not in got_reason or status == "mismatch"


def test_refusal_is_judged_on_what_the_model_computes():
    rng = np.random.default_rng(0)
    constant = probes.describe_outputs([np.full((500, 3), 0.25, np.float32)], ["probs"])
    why = probes.output_vacuity(constant, 1e-5, 1e-5)
    assert why == "over 500 samples: probs 1 distinct, spread 0.0e+00"
    # varying by no more than the tolerance: a path ignoring its inputs would pass
    flat = probes.describe_outputs([0.5 + 1e-7 * rng.random((500, 3))], ["y"])
    assert probes.output_vacuity(flat, 1e-5, 1e-5).startswith("over 500 samples: y 500 distinct")
    # negative control: one output that varies is enough
    varying = probes.describe_outputs(
        [np.full((500, 1), 2.0), rng.random((500, 4, 2))], ["constant", "sequence"]
    )
    assert probes.output_vacuity(varying, 1e-5, 1e-5) is None
    assert varying[1]["distinct_samples"] == 500 and 0.9 < varying[1]["spread"] <= 1


# -- models built here, through the converter and Node ------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small models of the kinds that died with a traceback or stopped the
    whole verdict, each saved as users save them."""
    import_tensorflow()
    import keras
    import tf_keras

    root = tmp_path_factory.mktemp("verdict_models")
    K = tf_keras.layers
    paths = {}

    # LSTM -> LayerNormalization -> LSTM, with a softsign head: the graph
    # converter refuses Softsign ("Unsupported Ops"), tfjs-layers has it.
    tf_keras.utils.set_random_seed(1)
    tf_keras.Sequential([
        tf_keras.Input((10, 3)), K.LSTM(8, return_sequences=True), K.LayerNormalization(),
        K.LSTM(6), K.Dense(2, activation="softsign"),
    ]).save(paths.setdefault("layer_norm", root / "layer_norm.h5"))  # fmt: skip

    # The most common regularised LSTM: dropout is inactive at inference.
    tf_keras.utils.set_random_seed(2)
    tf_keras.Sequential([
        tf_keras.Input((10, 3)), K.LSTM(8, dropout=0.3, recurrent_dropout=0.3),
        K.Dense(4, activation="softmax"),
    ]).save(paths.setdefault("dropout", root / "dropout.h5"))  # fmt: skip

    # Keras 3, dict inputs and dict outputs.
    keras.utils.set_random_seed(3)
    tokens = keras.Input((12,), dtype="int32", name="tokens")
    numeric = keras.Input((12, 2), name="numeric")
    h = keras.layers.Concatenate()([keras.layers.Embedding(30, 4)(tokens), numeric])
    h = keras.layers.GRU(8)(h)
    keras.Model(
        {"tokens": tokens, "numeric": numeric},
        {"label": keras.layers.Dense(3, activation="softmax", name="label")(h),
         "score": keras.layers.Dense(1, name="score")(h)},
    ).save(paths.setdefault("dict_io", root / "dict_io.keras"))  # fmt: skip

    # A Lambda layer: its code comes from the file.
    tf_keras.utils.set_random_seed(4)
    tf_keras.Sequential([
        tf_keras.Input((10, 3)), K.GRU(8), K.Lambda(lambda x: x * 2.0, name="double"),
        K.Dense(2),
    ]).save(paths.setdefault("lambda", root / "lambda.h5"))  # fmt: skip

    # A SavedModel whose Embedding takes a float32 input (as tfjs's own e2e
    # SavedModel does): uniform floats in [-1, 1] would all become token 0.
    keras.utils.set_random_seed(5)
    ids = keras.Input((8,), dtype="float32", name="ids")
    y = keras.layers.Dense(3)(keras.layers.GRU(6)(keras.layers.Embedding(50, 4)(ids)))
    keras.Model(ids, y).export(paths.setdefault("float_ids", root / "float_ids"), verbose=False)

    # A subclassed model saved as a SavedModel: no graph of layers to convert.
    class Tagger(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.gru, self.head = K.GRU(8), K.Dense(3, activation="softmax")

        def call(self, x):
            return self.head(self.gru(x))

    tf_keras.utils.set_random_seed(6)
    tagger = Tagger()
    tagger(np.zeros((2, 10, 4), np.float32))
    tagger.save(paths.setdefault("subclassed", root / "subclassed"), save_format="tf")
    return paths


def test_a_format_the_converter_refuses_is_unsupported_and_the_others_run(
    node_runtime, models, tmp_path
):
    folder = tmp_path / "layer_norm"
    exported = _run("export", models["layer_norm"], folder)
    assert exported.exit_code == 0, exported.output
    reason = ("tensorflowjs_converter failed: ValueError: Unsupported Ops in the model before "
              "optimization: Softsign")  # fmt: skip
    assert f"note: graph format unsupported: {reason}" in exported.output
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["unsupported"] == {"graph": reason}
    assert set(manifest["conversions"]) == {"layers"}
    assert not (folder / "tfjs_graph").exists()  # nothing half-written
    assert "tfjs_graph" not in "".join(manifest["files"])

    result = _run("verify", "--model-dir", folder, "--runtime", "tfjs-node", "--samples", 32,
                  "--report", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 0, result.output
    verdicts = _verdicts(tmp_path / "report")
    assert verdicts == {**dict.fromkeys(TFJS_NODE, "pass"), "tfjs-node/graph": "unsupported"}
    assert _results(tmp_path / "report")["tfjs-node/graph"]["reason"] == reason
    assert re.search(r"– +│ unsupported │ layer_norm │ tfjs-node/graph", result.output)
    said = " ".join(result.output.split())  # the terminal wraps long lines
    assert f"layer_norm tfjs-node/graph: unsupported: {reason}" in said
    assert "3 passed, 0 mismatched, 1 unsupported, 0 refused, 0 skipped" in result.output


def test_dropout_lstm_classifier_exports_and_passes(node_runtime, models, tmp_path):
    """It died in export's unrolled twin (`_dropout_mask_cache`)."""
    result = _run("verify", "--keras-model", models["dropout"], "--runtime", "tfjs-node",
                  "--samples", 32, "--report", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    results = _results(tmp_path)
    assert {r: v["status"] for r, v in results.items()} == dict.fromkeys(TFJS_NODE, "pass")
    assert all(r["argmax_agree"] == 32 for r in results.values())


def test_keras3_dict_inputs_and_outputs_keep_their_names(node_runtime, models, tmp_path):
    """It died in keras3._nested_io with KeyError: 0."""
    result = _run("verify", "--keras-model", models["dict_io"], "--runtime", "tfjs-node",
                  "--samples", 32, "--report", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "report.json").read_text())
    assert [i["name"] for i in saved["inputs"]["dict_io"]] == ["numeric", "tokens"]
    assert [i["dtype"] for i in saved["inputs"]["dict_io"]] == ["float32", "int32"]
    results = _results(tmp_path)
    assert {r: v["status"] for r, v in results.items()} == dict.fromkeys(TFJS_NODE, "pass")
    for r in results.values():
        assert [o["name"] for o in r["outputs"]] == ["label", "score"]


def test_a_lambda_layer_is_refused_in_one_line_unless_trusted(node_runtime, models, tmp_path):
    source = models["lambda"]
    said = (f"error: {source}: Lambda layer double, whose code comes from the file: loading it "
            "runs that code; pass --trust-lambda if you trust the file")  # fmt: skip
    for args in (["verify", "--keras-model", source], ["export", source, tmp_path / "out"]):
        result = _run(*args)
        assert result.exit_code == 1
        assert result.output.strip().splitlines() == [said]
    assert not (tmp_path / "out").exists()

    result = _run("verify", "--keras-model", source, "--trust-lambda", "--runtime", "tfjs-node",
                  "--samples", 32, "--report", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 0, result.output
    results = _results(tmp_path / "report")
    assert {r: v["status"] for r, v in results.items()} == {
        **dict.fromkeys(TFJS_NODE, "pass"),
        "tfjs-node/layers": "unsupported",
    }
    layers = results["tfjs-node/layers"]["reason"]
    assert layers == "Lambda layer double: tfjs-layers cannot run Python code"


def test_outputs_that_cannot_tell_paths_apart_are_refused(node_runtime, models, tmp_path):
    """The float-id SavedModel: its input is read as token ids (whole floats
    within the table), so it gets a real verdict; fed as the float input it
    declares (uniform in [-1, 1]: every id 0), Keras gives one output for
    every sample, and verify refuses instead of passing."""
    folder = tmp_path / "float_ids"
    assert _run("export", models["float_ids"], folder).exit_code == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    (spec,) = manifest["signature"]["inputs"]
    assert (spec["kind"], spec["dtype"], spec["low"], spec["high"]) == ("tokens", "float32", 0, 50)

    saved_model = ["--runtime", "tfjs-node/saved_model", "--samples", 64]
    result = _run("verify", "--model-dir", folder, *saved_model, "--report", tmp_path / "real")
    assert result.exit_code == 0, result.output  # negative control: its outputs vary
    assert _verdicts(tmp_path / "real") == {"tfjs-node/saved_model": "pass"}
    real = json.loads((tmp_path / "real" / "report.json").read_text())
    assert real["outputs"]["float_ids"][0]["distinct_samples"] == 64
    (fed,) = real["inputs"]["float_ids"]
    assert fed["dtype"] == "float32" and fed["distinct_values"] > 40

    # What verify made of it before: a float input, uniform in [-1, 1].
    as_floats = tmp_path / "as_floats"
    shutil.copytree(folder, as_floats)
    manifest["signature"]["inputs"] = [{**spec, "kind": "float", "low": -1.0, "high": 1.0}]
    (as_floats / "manifest.json").write_text(json.dumps(manifest))
    result = _run("verify", "--model-dir", as_floats, *saved_model, "--report", tmp_path / "vac")
    assert result.exit_code == 1
    saved = json.loads((tmp_path / "vac" / "report.json").read_text())
    # (the manifest names the model: float_ids)
    assert saved["inputs"]["float_ids"][0]["distinct_samples"] == 64  # the inputs all differ
    assert saved["outputs"]["float_ids"][0]["distinct_samples"] == 1  # what Keras computes does not
    (r,) = saved["results"]
    assert r["status"] == "refused"
    assert r["reason"] == (
        "refused: the model's outputs cannot tell paths apart "
        "(over 64 samples: output_0 1 distinct, spread 0.0e+00)"
    )
    assert "0 passed, 0 mismatched, 0 unsupported, 1 refused, 0 skipped" in result.output


def test_keras3_layer_normalization_has_a_tf_keras_twin():
    """Keras 3 writes rms_scaling=False, which tf-keras does not take: the
    LSTM -> LayerNormalization -> LSTM model had no twin ("Error when
    deserializing class 'LayerNormalization'"), so no path at all."""
    import_tensorflow()
    import keras

    from tfjs_bridge.conversion.keras3 import to_tf_keras

    keras.utils.set_random_seed(6)
    model = keras.Sequential([
        keras.Input((10, 3)), keras.layers.LSTM(8, return_sequences=True),
        keras.layers.LayerNormalization(), keras.layers.LSTM(6), keras.layers.Dense(2),
    ])  # fmt: skip
    x = np.random.default_rng(0).uniform(-1, 1, (16, 10, 3)).astype(np.float32)
    twin = to_tf_keras(model)
    np.testing.assert_allclose(twin(x).numpy(), model(x).numpy(), atol=1e-5, rtol=1e-5)


def test_a_subclassed_savedmodel_is_served_by_its_signature(node_runtime, models, tmp_path,
                                                           rerecord):  # fmt: skip
    """It died with TypeError: 'NoneType' object is not iterable. Its layers
    path is unsupported, naming the class; its graph and SavedModel pass, and
    a wrong weight in the graph's shard is a mismatch there."""
    folder = tmp_path / "subclassed"
    exported = _run("export", models["subclassed"], folder)
    assert exported.exit_code == 0, exported.output
    result = _run("verify", "--model-dir", folder, "--runtime", "tfjs-node", "--samples", 32,
                  "--report", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 0, result.output
    results = _results(tmp_path / "report")
    verdicts = {r: v["status"] for r, v in results.items()}
    assert verdicts == {"tfjs-node/layers": "unsupported", "tfjs-node/graph": "pass",
                        "tfjs-node/saved_model": "pass",
                        "tfjs-node/saved_model_xla": "skip"}, verdicts  # fmt: skip
    assert results["tfjs-node/layers"]["reason"].startswith("a subclassed keras.Model (Tagger)")

    # the head's kernel, found by name in the shard (its other entries are int32 constants)
    group = json.loads((folder / "tfjs_graph/model.json").read_text())["weightsManifest"][0]
    offset = 0
    for w in group["weights"]:
        if "dense" in w["name"] and w["dtype"] == "float32":
            break
        offset += 4 * int(np.prod(w["shape"]))  # float32 and int32 alike
    shard = f"tfjs_graph/{group['paths'][0]}"
    weights = np.fromfile(folder / shard, np.float32)
    weights[offset // 4] *= 1.5
    weights.tofile(folder / shard)
    rerecord(folder, shard)
    wrong = _run("verify", "--model-dir", folder, "--runtime", "tfjs-node/graph", "--samples", 32,
                 "--report", tmp_path / "wrong")  # fmt: skip
    assert wrong.exit_code == 1, wrong.output
    assert _results(tmp_path / "wrong")["tfjs-node/graph"]["status"] == "mismatch"


def test_a_lookup_table_is_saved_with_the_serving_function(tmp_path):
    """export saves a module holding the weights, not the Keras model; the
    table an IntegerLookup holds is not a weight (the module cannot save it:
    an 'untracked' resource), so such a model is saved whole, and maps each
    id as Keras does (3, 5, 7, 11 to their rows, others to OOV)."""
    import tf_keras as keras

    from tfjs_bridge.conversion.export import save_serving

    tf = import_tensorflow()
    keras.utils.set_random_seed(3)
    ids = keras.Input((6,), dtype="int64")
    rows = keras.layers.Embedding(6, 4)(keras.layers.IntegerLookup(vocabulary=[3, 5, 7, 11])(ids))
    model = keras.Model(ids, keras.layers.Dense(2, name="head")(keras.layers.GRU(3)(rows)))
    save_serving(model, tmp_path)

    x = np.array([[3, 5, 7, 11, 2, 3], [11, 7, 5, 3, 3, 9], [2, 4, 6, 8, 9, 10]], np.int64)
    expected = model(x).numpy()
    assert len({tuple(row) for row in expected.round(6)}) == 3  # the ids matter
    serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    (key,) = serve.structured_input_signature[1]
    served = serve(**{key: tf.constant(x, serve.structured_input_signature[1][key].dtype)})
    np.testing.assert_allclose(served["head"].numpy(), expected, atol=1e-6)
