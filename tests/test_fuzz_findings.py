"""Tool bugs the model fuzzer found (docs/models.md, "What it found"), each
on a small model built here the way the fuzzer's spec built it, through the
real export, tensorflowjs_converter and Node: every model gets a verdict per
path, and the paths that can hold it pass."""

import json

from test_user_models import _results, _run
from tfjs_bridge.core.quiet_tf import import_tensorflow

TFJS_NODE = {"tfjs-node/layers", "tfjs-node/graph", "tfjs-node/saved_model",
             "tfjs-node/saved_model_xla"}  # fmt: skip


def _verify(source, report, *more):
    """verify on a Keras file (--keras-model) or an exported folder (--model-dir)."""
    which = "--model-dir" if source.is_dir() else "--keras-model"
    result = _run("verify", which, source, "--runtime", "tfjs-node", "--samples", 32,
                  "--report", report, *more)  # fmt: skip
    verdicts = {r: v["status"] for r, v in _results(report).items()}
    return result, verdicts


def test_two_inputs_alike_keep_their_names_in_the_graph_model(node_runtime, tmp_path):
    """fz0-005, 024, 039, ... (11 of 100): two inputs of one shape and dtype
    (a question pair through a shared GRU) made the converter key the graph
    signature by tensor name (left:0), so every graph path failed with "no
    input named left:0 given". Concatenate is not symmetric: inputs fed
    swapped would mismatch."""
    import_tensorflow()
    import tf_keras

    K = tf_keras.layers
    tf_keras.utils.set_random_seed(7)
    left, right = tf_keras.Input((4, 3), name="left"), tf_keras.Input((4, 3), name="right")
    gru = K.GRU(5)
    y = K.Dense(2)(K.Concatenate()([gru(left), gru(right)]))
    source = tmp_path / "pair.h5"
    tf_keras.Model([left, right], y).save(source)

    folder = tmp_path / "pair"
    assert _run("export", source, folder).exit_code == 0
    graph = json.loads((folder / "tfjs_graph" / "model.json").read_text())
    assert sorted(graph["signature"]["inputs"]) == ["left", "right"]

    result, verdicts = _verify(folder, tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert verdicts == dict.fromkeys(TFJS_NODE, "pass")
