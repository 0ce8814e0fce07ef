"""`verify --keras-model` and `export` on models the project has never seen:
Keras 3 files, tf-keras .h5 files of several RNN shapes, and SavedModels."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfjs_bridge.cli import main
from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.runtime.runtimes import RUNTIMES

# export writes the tfjs formats; the ONNX route is `convert --format onnx`.
TFJS_RUNTIMES = {name for name, rt in RUNTIMES.items() if rt.format != "onnx"}


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _results(report_dir):
    saved = json.loads((report_dir / "report.json").read_text())
    return {r["runtime"]: r for r in saved["results"]}


@pytest.fixture(scope="module")
def keras3_model(tmp_path_factory):
    """Keras 3 defaults (reset-after GRU, bidirectional), Keras 3's own
    hard_sigmoid, and a sequence output: everything stock tfjs gets wrong."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((12, 3)),
            keras.layers.Bidirectional(keras.layers.GRU(8, return_sequences=True)),
            keras.layers.LSTM(6, recurrent_activation="hard_sigmoid", return_sequences=True),
            keras.layers.Dense(4, activation="hard_sigmoid"),
        ]
    )
    path = tmp_path_factory.mktemp("keras3") / "tagger.keras"
    model.save(path)
    return path


def test_keras3_model_passes_on_every_node_path(node_runtime, keras3_model, tmp_path):
    result = _run("verify", "--keras-model", keras3_model, "--samples", 64, "--report", tmp_path)
    assert result.exit_code == 0, result.output
    results = _results(tmp_path)
    assert set(results) == TFJS_RUNTIMES
    for runtime, r in results.items():
        assert r["status"] == "pass", (runtime, r["reason"])
        (output,) = r["outputs"]
        assert output["shape"] == [64, 12, 4]
        assert len(output["max_abs_per_timestep"]) == 12
        assert max(output["max_abs_per_timestep"]) == r["max_abs"] <= 1e-5


def test_keras3_hard_sigmoid_is_kept_and_the_tfjs_one_would_be_caught(
    node_runtime, keras3_model, tmp_path, rerecord
):
    folder = tmp_path / "tagger"
    exported = _run("export", keras3_model, folder)
    assert exported.exit_code == 0, exported.output
    assert "tagger: keras3 ->" in exported.output
    model_json = folder / "tfjs_layers" / "model.json"
    text = model_json.read_text()
    assert text.count('"keras3_hard_sigmoid"') == 2 and '"hard_sigmoid"' not in text
    # The same model with tfjs's (tf-keras's) hard sigmoid computes something else.
    model_json.write_text(text.replace('"keras3_hard_sigmoid"', '"hard_sigmoid"'))
    rerecord(folder, "tfjs_layers/model.json")
    result = _run("verify", "--model-dir", folder, "--runtime", "tfjs-node/layers",
                  "--samples", 32, "--report", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 1
    (r,) = _results(tmp_path / "report").values()
    assert r["status"] == "mismatch" and r["outside"] > 0


def test_tf_keras_functional_model_with_two_outputs_and_free_time_axis(node_runtime, tmp_path):
    import_tensorflow()
    import tf_keras

    tf_keras.utils.set_random_seed(5)
    x = tf_keras.Input((None, 3), name="x")
    h = tf_keras.layers.GRU(8, return_sequences=True)(x)
    h = tf_keras.layers.LSTM(5)(h)
    value = tf_keras.layers.Dense(1, name="value")(h)
    probs = tf_keras.layers.Dense(4, activation="softmax", name="probs")(h)
    tf_keras.Model(x, [value, probs]).save(tmp_path / "two_heads.h5")

    result = _run("verify", "--keras-model", tmp_path / "two_heads.h5", "--samples", 40,
                  "--report", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 0, result.output
    results = _results(tmp_path / "report")
    assert set(results) == TFJS_RUNTIMES
    layers = results["tfjs-node/layers"]
    assert [o["name"] for o in layers["outputs"]] == ["value", "probs"]
    # The SavedModel signature names them too, sorted (as both sides list them).
    assert [o["name"] for o in results["tfjs-node/saved_model"]["outputs"]] == ["probs", "value"]
    assert all(r["status"] == "pass" for r in results.values())


def test_savedmodel_that_is_not_keras_runs_its_signature(node_runtime, keras3_model, tmp_path):
    """A Keras 3 `model.export()` folder: served as is (graph and saved_model).
    Its RNN keeps a While loop that tfjs's graph executor cannot run: verify
    says so (unsupported, not a mismatch), and the SavedModel path verifies it."""
    import keras

    keras.saving.load_model(keras3_model).export(tmp_path / "exported", verbose=False)
    result = _run("verify", "--keras-model", tmp_path / "exported", "--samples", 16,
                  "--report", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 0, result.output  # no mismatch, one path passes
    results = _results(tmp_path / "report")
    assert set(results) == {"tfjs-node/graph", "tfjs-node/saved_model", "tfjs-cpu/graph",
                            "tfjs-wasm/graph"}  # fmt: skip
    assert results["tfjs-node/saved_model"]["status"] == "pass"
    assert results["tfjs-node/saved_model"]["max_abs"] == 0
    for graph in ("tfjs-node/graph", "tfjs-cpu/graph", "tfjs-wasm/graph"):
        assert results[graph]["status"] == "unsupported"
        assert "While loop" in results[graph]["reason"]
    assert "no layers model, tfjs-node/layers not run" in result.output


@pytest.mark.parametrize(
    "make, code, message",
    [
        (lambda d: d / "missing.h5", 2, "no such file or folder"),
        (lambda d: (d / "model.txt").write_text("hi") and d / "model.txt", 2,
         "expected a .h5, a .keras file or a SavedModel folder"),
        (lambda d: (d / "bad.h5").write_bytes(b"not hdf5") and d / "bad.h5", 1,
         "not a loadable tf-keras .h5 model"),
        (lambda d: (d / "bad.keras").write_bytes(b"not a zip") and d / "bad.keras", 1,
         "not a loadable Keras 3 model"),
        (lambda d: d, 2, "not a SavedModel (no saved_model.pb)"),
    ],
    ids=["missing", "unknown-suffix", "corrupt-h5", "corrupt-keras", "plain-folder"],
)  # fmt: skip
def test_bad_user_model_gives_one_line_error(tmp_path, make, code, message):
    source = make(tmp_path)
    out = tmp_path / "out"
    result = _run("export", source, out)
    assert result.exit_code == code
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {source}: ") and message in lines[0]
    assert not out.exists()


def test_node_trained_keras_gru_round_trips_to_keras(node_runtime, tmp_path):
    """Keras's reset-after GRU, trained in Node by tfjs-layers (node/lib/layers/gru_reset_after.js),
    imported to Keras by the converter: both compute the same."""
    from tfjs_bridge.conversion.convert import import_layers_model
    from tfjs_bridge.runtime.node_process import run_node_json

    out = tmp_path / "gru_keras_node"
    trained = run_node_json("train.js", "gru_keras", "--epochs", "2", "--limit", "1000",
                            "--out", out, "--json")  # fmt: skip
    assert trained["test"]["accuracy"] > 0.2  # chance is 0.1
    import_layers_model(out)
    model = json.loads((out / "tfjs_layers" / "model.json").read_text())
    gru = model["modelTopology"]["config"]["layers"][0]["config"]  # as tfjs saves it
    assert gru["reset_after"] is True and gru["recurrent_activation"] == "sigmoid"
    result = _run("verify", "--model-dir", out, "--runtime", "tfjs-node/layers",
                  "--runtime", "tfjs-wasm/layers", "--samples", 200)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.isfinite(trained["test"]["loss"])
