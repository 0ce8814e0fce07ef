"""A Keras Conv1D(padding="causal") in front of a GRU, the usual forecasting
front end, through the real converter and every Node path: stock tfjs-layers
4.22 cannot run causal padding; node/lib/layers/conv1d_causal.js can."""

import pytest

from tfjs_bridge.conversion.export import export_model
from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.parity.verify import verify_models
from tfjs_bridge.runtime.runtimes import RUNTIMES, resolve_runtimes

LAYERS_RUNTIMES = [name for name, rt in RUNTIMES.items() if rt.format == "layers"]


@pytest.fixture(scope="module")
def causal_h5(tmp_path_factory):
    import_tensorflow()
    import tf_keras

    tf_keras.utils.set_random_seed(5)
    model = tf_keras.Sequential(
        [
            tf_keras.Input(shape=(12, 3)),
            tf_keras.layers.Conv1D(4, 3, padding="causal"),
            # dilation and strides too, checked against Keras itself
            tf_keras.layers.Conv1D(4, 2, padding="causal", dilation_rate=2),
            tf_keras.layers.Conv1D(4, 3, padding="causal", strides=2, activation="relu"),
            tf_keras.layers.GRU(5),
            tf_keras.layers.Dense(2),
        ]
    )
    path = tmp_path_factory.mktemp("causal") / "forecaster.h5"
    model.save(path)
    return path


def test_causal_conv1d_passes_on_every_node_path(node_runtime, causal_h5):
    report = verify_models([], [causal_h5], resolve_runtimes([]), samples=64)
    assert {r.runtime for r in report.results} >= set(LAYERS_RUNTIMES)
    for r in report.results:
        assert r.status == "pass", (r.runtime, r.reason)
    assert report.ok


def test_same_padding_in_its_place_is_caught(node_runtime, causal_h5, tmp_path, rerecord):
    """Negative control: the converted model with 'same' for 'causal' (what a
    careless shim might run) computes something else, and verify says so."""
    folder = tmp_path / "forecaster"
    export_model(causal_h5, folder)
    model_json = folder / "tfjs_layers" / "model.json"
    text = model_json.read_text()
    assert text.count('"padding": "causal"') == 3
    model_json.write_text(text.replace('"padding": "causal"', '"padding": "same"'))
    rerecord(folder, "tfjs_layers/model.json")
    report = verify_models([folder], [], resolve_runtimes(LAYERS_RUNTIMES), samples=32)
    assert {r.runtime for r in report.results} == set(LAYERS_RUNTIMES)
    for r in report.results:
        assert r.status == "mismatch" and r.figures.get("outside", 0) > 0, (r.runtime, r.reason)
