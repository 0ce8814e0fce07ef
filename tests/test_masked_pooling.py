"""A masked text classifier, Embedding(mask_zero=True) -> GRU(return_sequences)
-> GlobalAveragePooling1D -> Dense, through `verify --keras-model` on the
layers paths. tfjs-layers 4.22's own GlobalAveragePooling1D ignores the mask
(the mean of every step, padding included; Keras averages the real steps);
tfjs-bridge's (node/lib/layers/masked_pooling.js) honours it. The negative
control runs the same verify with TFJS_BRIDGE_MASKED_POOLING=stock, tfjs's
own average, and must see a mismatch: the test can fail."""

import math

import pytest

from test_user_models import _results, _run
from tfjs_bridge.core.quiet_tf import import_tensorflow

LAYERS_PATHS = ("tfjs-node/layers", "tfjs-cpu/layers")


@pytest.fixture(scope="module")
def text_classifier(tmp_path_factory):
    import_tensorflow()
    import tf_keras

    tf_keras.utils.set_random_seed(7)
    model = tf_keras.Sequential(
        [
            tf_keras.Input((12,), dtype="int32"),
            tf_keras.layers.Embedding(50, 8, mask_zero=True),
            tf_keras.layers.GRU(8, return_sequences=True),
            tf_keras.layers.GlobalAveragePooling1D(),
            tf_keras.layers.Dense(3, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("masked") / "masked_avg.h5"
    model.save(path)
    return path


def _verify(model, report):
    args = [arg for path in LAYERS_PATHS for arg in ("--runtime", path)]
    return _run("verify", "--keras-model", model, *args, "--samples", 48, "--report", report)


def test_masked_average_pooling_passes_the_layers_paths(node_runtime, text_classifier, tmp_path):
    result = _verify(text_classifier, tmp_path)
    assert result.exit_code == 0, result.output
    results = _results(tmp_path)
    assert set(results) == set(LAYERS_PATHS)
    for runtime, r in results.items():
        assert r["status"] == "pass", (runtime, r["reason"])
        assert r["max_abs"] <= 1e-6, runtime


def test_tfjs_own_average_pooling_would_be_caught(
    node_runtime, text_classifier, tmp_path, monkeypatch
):
    monkeypatch.setenv("TFJS_BRIDGE_MASKED_POOLING", "stock")
    result = _verify(text_classifier, tmp_path)
    assert result.exit_code == 1
    results = _results(tmp_path)
    assert set(results) == set(LAYERS_PATHS)
    for runtime, r in results.items():
        assert r["status"] == "mismatch", runtime
        assert r["outside"] > 0 and r["argmax_agree"] < r["argmax_total"], runtime
        # A sample padded throughout: Keras's 0 / 0 (NaN) against tfjs's mean of the padding.
        firsts = r["outputs"][0]["first_outside"]
        assert any(math.isnan(f["python"]) and math.isfinite(f["node"]) for f in firsts), runtime
