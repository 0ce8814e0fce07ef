"""The seed models end to end, CI-sized: train in tf-keras, convert with the
real converter, run in real Node processes on tfjs-node, compare."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tfjs_bridge.cli import main
from tfjs_bridge.contract import REGISTRY_JSON, registry_json
from tfjs_bridge.conversion.convert import import_layers_model
from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.folder.artifacts import read_manifest
from tfjs_bridge.runtime.node_process import run_node_json
from tfjs_bridge.training import data
from tfjs_bridge.training.registry import MODELS, build_keras, get_spec
from tfjs_bridge.training.train import train

GRU_LIMIT = 3000  # train and test images: enough to beat chance clearly in one epoch
NODE_FORMATS = ["layers", "graph", "saved_model"]


@pytest.fixture(scope="module")
def gru_small(small_models):
    return small_models / "gru", read_manifest(small_models / "gru")


@pytest.fixture(scope="module")
def lstm_seed(small_models):
    return small_models / "lstm", read_manifest(small_models / "lstm")


def _keras_predict(h5_path, x):
    import_tensorflow()
    import tf_keras

    model = tf_keras.models.load_model(h5_path, compile=False)
    return model(x, training=False).numpy()


def test_node_registry_json_is_current():
    assert REGISTRY_JSON.read_text() == registry_json(), "run `tfjs-bridge registry`"


def test_registry_gru_is_the_tutorials_tfjs_gru():
    layer = build_keras(get_spec("gru")).layers[0]
    config = layer.get_config()
    assert (config["units"], config["reset_after"]) == (64, False)
    assert config["recurrent_activation"] == "hard_sigmoid"
    assert layer.input_shape == (None, 28, 28)


def test_gru_learns_on_a_small_real_mnist(gru_small):
    _, manifest = gru_small
    assert manifest["data"]["train"] == GRU_LIMIT
    assert manifest["test"]["accuracy"] >= 0.4  # chance is 0.1
    assert {"layers", "graph"} <= set(manifest["conversions"])  # and onnx after `make onnx`
    assert all(
        len(manifest["conversions"][f]["files"]["model.json"]) == 64 for f in ("layers", "graph")
    )


@pytest.mark.parametrize("fmt", NODE_FORMATS)
def test_node_classifies_the_same_digits_as_python(node_runtime, gru_small, fmt):
    model_dir, _ = gru_small
    n = 500
    x, labels = data.mnist_split("test", n)
    python_digits = _keras_predict(model_dir / "keras.h5", x).argmax(-1)
    result = run_node_json(
        "predict.js", "--model", model_dir, "--format", fmt, "--mnist-test", f"0:{n}", "--json"
    )
    assert result["format"] == fmt and result["backend"] == "tensorflow"
    assert result["output_shape"] == [n, 10]
    node_digits = np.array(result["digits"])
    assert (node_digits == python_digits).all(), np.flatnonzero(node_digits != python_digits)
    assert result["accuracy"] == pytest.approx((python_digits == labels).mean(), abs=1e-12)


@pytest.mark.parametrize("fmt", NODE_FORMATS)
def test_lstm_seed_predicts_3_alike_in_node(node_runtime, lstm_seed, fmt):
    model_dir, manifest = lstm_seed
    python = manifest["test"]["prediction"]
    result = run_node_json(
        "predict.js", "--model", model_dir, "--format", fmt, "--value", "3", "--json"
    )
    spec = get_spec("lstm")
    assert result["output_shape"] == [1, 1]
    assert abs(result["prediction"][0] - python) <= spec.atol + spec.rtol * abs(python)


def test_node_writes_outputs_as_npy(node_runtime, lstm_seed, tmp_path):
    model_dir, _ = lstm_seed
    x = np.float32([1, 2, 3, -4.5]).reshape(4, 1, 1)
    np.save(tmp_path / "x.npy", x)
    run_node_json(
        "predict.js", "--model", model_dir, "--input", tmp_path / "x.npy",
        "--output", tmp_path / "y.npy", "--json",
    )  # fmt: skip
    got = np.load(tmp_path / "y.npy")
    expected = _keras_predict(model_dir / "keras.h5", x)
    assert got.shape == (4, 1)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_training_is_reproducible_for_a_seed(tmp_path):
    first = train(get_spec("lstm"), tmp_path / "a", seed=7)
    second = train(get_spec("lstm"), tmp_path / "b", seed=7)
    other = train(get_spec("lstm"), tmp_path / "c", seed=8)
    assert first["history"] == second["history"]
    assert first["test"]["prediction"] == second["test"]["prediction"]
    assert other["test"]["prediction"] != first["test"]["prediction"]


def test_node_trained_model_runs_in_python_after_import(node_runtime, tmp_path):
    out = tmp_path / "lstm_node"
    trained = run_node_json("train.js", "lstm", "--epochs", "3", "--out", out, "--json")
    assert trained["epochs"] == 3
    written = import_layers_model(out)
    python = _keras_predict(written, np.float32([[[3]]]))[0, 0]
    assert abs(python - trained["test"]["prediction"]) <= 1e-5
    node = run_node_json("predict.js", "--model", out, "--value", "3", "--json")
    assert abs(node["prediction"][0] - python) <= 1e-5


def test_node_trains_the_gru_on_mnist(node_runtime, tmp_path):
    out = tmp_path / "gru_node"
    trained = run_node_json(
        "train.js", "gru", "--epochs", "1", "--limit", "300", "--out", out, "--json"
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trained_in"] == "node" and manifest["versions"]["backend"] == "tensorflow"
    assert (out / "tfjs_layers" / "model.json").exists()
    assert 0 <= trained["test"]["accuracy"] <= 1


@pytest.fixture
def broken_mnist(tmp_path, monkeypatch):
    """A copy of the MNIST folder that each test breaks in its own way."""
    folder = tmp_path / "mnist"
    shutil.copytree(data.mnist_dir(), folder)
    monkeypatch.setenv("TFJS_BRIDGE_MNIST_DIR", str(folder))
    return folder


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.unlink(), "MNIST file not found: run `make setup`"),
        (lambda f: f.write_bytes(f.read_bytes()[:-100]), "truncated or corrupt"),
        (lambda f: f.write_bytes(b"\0\0\0\0" + f.read_bytes()[4:]), "bad magic number"),
    ],
    ids=["missing", "truncated", "bad-magic"],
)
def test_broken_mnist_gives_one_line_error(broken_mnist, tmp_path, damage, message):
    damaged = broken_mnist / "train-images-idx3-ubyte"
    damage(damaged)
    out = tmp_path / "models"
    result = CliRunner().invoke(main, ["train", "gru", "--limit", "10", "--out", str(out)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {damaged}: ")
    assert message in lines[0]
    assert not (out / "gru").exists()


def test_broken_mnist_in_node_gives_one_line_error(node_runtime, broken_mnist, tmp_path):
    from tfjs_bridge.core.errors import NodeError

    damaged = broken_mnist / "t10k-labels-idx1-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:500])
    with pytest.raises(NodeError, match="truncated or corrupt") as err:
        run_node_json("train.js", "gru", "--limit", "10", "--out", tmp_path / "gru")
    assert str(damaged) in str(err.value)
    assert not (tmp_path / "gru").exists()


def test_unknown_model_is_a_usage_error():
    result = CliRunner().invoke(main, ["train", "nope"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: unknown model 'nope' (known: " + ", ".join(MODELS) + ")"
