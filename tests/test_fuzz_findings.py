"""Tool bugs the model fuzzer found (docs/models.md, "What it found"), each
on a small model built here the way the fuzzer's spec built it, through the
real export, tensorflowjs_converter and Node: every model gets a verdict per
path, and the paths that can hold it pass."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

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


def _verify_layers_paths(folder, report):
    """verify of an exported folder on the two layers paths of Node's backends."""
    paths = ["--runtime", "tfjs-node/layers", "--runtime", "tfjs-cpu/layers"]
    result = _run("verify", "--model-dir", folder, *paths, "--samples", 32, "--report", report)
    return result, {r: v["status"] for r, v in _results(report).items()}


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


def _verify_in_process_of_its_own(source, report, timeout=300):
    """verify as the console script, killed after `timeout`: a translation
    that loops forever fails the test instead of hanging it."""
    cli = Path(sys.executable).with_name("tfjs-bridge")
    proc = subprocess.run(
        [cli, "verify", "--keras-model", source, "--runtime", "tfjs-node", "--samples", "32",
         "--report", report],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return proc, {r: v["status"] for r, v in _results(report).items()}


def test_keras3_shared_nested_sequential_over_tokens(node_runtime, tmp_path):
    """fz0-012, 031, 050, 053, 065, 099: a Keras 3 functional model calling a
    nested Sequential hung in keras3.to_tf_keras (Keras 3 numbers a nested
    model's calls from 0, tf-keras from 1: tf-keras waited for node 0
    forever). Then its token inputs, which reach their Embedding inside the
    nested model, were read as floats: every probe became token 0, and verify
    refused. Two inputs through one encoder: each call's node counts."""
    import_tensorflow()
    import keras

    L = keras.layers
    keras.utils.set_random_seed(8)
    encoder = keras.Sequential([keras.Input((5,), dtype="int32"), L.Embedding(30, 4),
                                L.LSTM(4)], name="encoder")  # fmt: skip
    left = keras.Input((5,), dtype="int32", name="left")
    right = keras.Input((5,), dtype="int32", name="right")
    y = L.Dense(2)(L.Concatenate()([encoder(left), encoder(right)]))
    source = tmp_path / "pair.keras"
    keras.Model([left, right], y).save(source)

    proc, verdicts = _verify_in_process_of_its_own(source, tmp_path / "report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    fed = saved["inputs"]["pair"]
    assert [(i["name"], i["dtype"]) for i in fed] == [("left", "int32"), ("right", "int32")]
    assert saved["outputs"]["pair"][0]["distinct_samples"] == 32
    assert verdicts == dict.fromkeys(TFJS_NODE, "pass")


def test_keras3_attention_states_and_dict_outputs_translate(node_runtime, tmp_path):
    """Keras 3 models that had no tf-keras twin, so no verdict at all: a
    MultiHeadAttention ('query_shape', fz0-010), an Embedding(mask_zero) ->
    Attention (Keras 3's mask op layers: "'str' object is not callable",
    fz0-041), an RNN given initial_state= (the states were dropped,
    fz0-022/068), and dict outputs holding an LSTM's states (named states,
    states by Keras 3: "'states_1' is not in list", fz0-074). tfjs-layers has no class
    for either attention layer: tfjs-bridge's (node/lib/layers/attention.js,
    multi_head_attention.js) pass the layers path too, the LSTM after the
    MultiHeadAttention reading no mask of the tokens' branch (masks.js)."""
    import_tensorflow()
    import keras

    L = keras.layers
    keras.utils.set_random_seed(9)
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    numeric = keras.Input((6, 3), name="numeric")
    embedded = L.Embedding(20, 4, mask_zero=True)(tokens)
    attended = L.Attention(use_scale=True)([embedded, embedded])
    label = L.Dense(3, activation="softmax", name="label")(L.GRU(4)(attended))
    mixed = L.MultiHeadAttention(num_heads=2, key_dim=4)(numeric, numeric)
    seq, h, c = L.LSTM(5, return_sequences=True, return_state=True, name="states")(mixed)
    score = L.Dense(1, name="score")(L.LSTM(5)(seq, initial_state=[h, c]))
    source = tmp_path / "attend.keras"
    keras.Model({"tokens": tokens, "numeric": numeric},
                {"label": label, "h": h, "c": c, "score": score}).save(source)  # fmt: skip

    result, verdicts = _verify(source, tmp_path / "report")
    assert verdicts == dict.fromkeys(TFJS_NODE, "pass")
    assert result.exit_code == 0, result.output
    results = _results(tmp_path / "report")
    names = [o["name"] for o in results["tfjs-node/graph"]["outputs"]]
    assert sorted(names) == ["label", "score", "states", "states_1"]


def test_a_keras3_stateful_rnn_passes_every_path_and_its_stream(node_runtime, tmp_path):
    """fz0-067: a stateful GRU (batch fixed at 1) stopped at the converter
    ("Identity is not in graph") or in Keras itself (batch 16 against 1),
    then was unsupported on every path. Now its formats hold its stateless
    twin and every path passes against the stateful Keras 3 model itself
    (reset before each batch of 1), the stream path against it fed in chunks.
    tests/test_stateful.py has tf-keras models and the negative controls."""
    import_tensorflow()
    import keras as K

    K.utils.set_random_seed(10)
    model = K.Sequential([K.Input((8, 3), batch_size=1), K.layers.GRU(3, stateful=True, name="gru"),
                          K.layers.Dense(2)])  # fmt: skip
    source = tmp_path / "streaming.keras"
    model.save(source)

    result, verdicts = _verify(source, tmp_path / "report", "--runtime", "tfjs-node/stream")
    assert result.exit_code == 0, result.output
    assert verdicts == dict.fromkeys([*TFJS_NODE, "tfjs-node/stream"], "pass")
    truths = {r["truth"].split(",")[0] for r in _results(tmp_path / "report").values()}
    chunks = "Keras stateful model fed chunks of 2+1+1+2+1+1 steps"
    assert truths == {"Keras stateful model", chunks}


def test_a_keras3_layer_tf_keras_cannot_build_leaves_the_savedmodel_paths(node_runtime, tmp_path):
    """A Keras 3 model with no tf-keras twin stopped verify with one line and
    no verdict. Now its layers path is unsupported, naming the layer, and
    the SavedModel serves the Keras 3 model itself: those paths still run.
    (Its GRU keeps its loop there, which the graph executor cannot run.)"""
    import_tensorflow()
    import keras

    L = keras.layers
    keras.utils.set_random_seed(11)
    x = keras.Input((5, 3), name="x")
    gated = L.MultiHeadAttention(num_heads=2, key_dim=4, use_gate=True, name="gated")(x, x)
    source = tmp_path / "gated.keras"
    keras.Model(x, L.Dense(2)(L.GRU(3)(gated))).save(source)

    result, verdicts = _verify(source, tmp_path / "report")
    assert verdicts == {
        **dict.fromkeys(TFJS_NODE, "pass"),
        "tfjs-node/layers": "unsupported",
        "tfjs-node/graph": "unsupported",
    }
    assert result.exit_code == 0, result.output
    results = _results(tmp_path / "report")
    assert results["tfjs-node/layers"]["reason"] == (
        "this Keras 3 model has no tf-keras equivalent that tfjs can load: layer "
        "MultiHeadAttention gated: ('Keyword argument not understood:', 'use_gate')"
    )
    assert "While loop" in results["tfjs-node/graph"]["reason"]


def test_a_masked_bidirectional_sequence_zeroes_its_masked_steps(node_runtime, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    """fz1-007: a masked Bidirectional(return_sequences) mismatched on every
    layers path (40 of 192 values): Keras zeroes both layers' masked steps
    (zero_output_for_mask), tfjs repeats the last output there. Unrolled,
    Keras zeroes the backward layer's mirrored steps (its mask is not reversed):
    the unrolled sum below tells the two apart. The negative control runs
    tfjs's own (TFJS_BRIDGE_MASKED_BIDIRECTIONAL=stock) and must mismatch."""
    import_tensorflow()
    import tf_keras

    K = tf_keras.layers
    tf_keras.utils.set_random_seed(12)
    x = tf_keras.Input((6, 2), name="x")
    h = K.Bidirectional(K.LSTM(4, return_sequences=True, unroll=True), merge_mode="sum")(
        K.Masking()(x)
    )
    y = K.Dense(2)(K.Bidirectional(K.GRU(3, return_sequences=True))(h))
    source = tmp_path / "tagger.h5"
    tf_keras.Model(x, y).save(source)
    folder = tmp_path / "tagger"
    assert _run("export", source, folder).exit_code == 0

    def verify(report):
        result = _run("verify", "--model-dir", folder, "--runtime", "tfjs-node/layers",
                      "--samples", 32, "--report", report)  # fmt: skip
        return result, {r: v["status"] for r, v in _results(report).items()}

    result, verdicts = verify(tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert verdicts == {"tfjs-node/layers": "pass"}

    monkeypatch.setenv("TFJS_BRIDGE_MASKED_BIDIRECTIONAL", "stock")
    result, verdicts = verify(tmp_path / "stock")
    assert result.exit_code == 1
    assert verdicts == {"tfjs-node/layers": "mismatch"}


def test_a_keras3_bidirectional_with_hard_sigmoid_loads_in_tfjs(node_runtime, tmp_path):
    """fz1-081: a Keras 3 Bidirectional(LSTM(recurrent_activation=
    "hard_sigmoid")) had no tf-keras twin ("Unknown activation function
    ... keras3_hard_sigmoid"): tf-keras rebuilds the backward layer from the
    forward one's config, where the renamed activation is a function, outside
    the custom objects passed to from_config. Every layers path was
    unsupported, the graph format was not made. Keras 3's hard_sigmoid is not
    tf-keras's: a twin using tf-keras's would mismatch here."""
    import_tensorflow()
    import keras

    L = keras.layers
    keras.utils.set_random_seed(13)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), L.Embedding(20, 4, mask_zero=True),
                              L.Bidirectional(L.LSTM(4, recurrent_activation="hard_sigmoid"),
                                              merge_mode="mul"),
                              L.Dense(2)])  # fmt: skip
    source = tmp_path / "tokens.keras"
    model.save(source)

    paths = ("--runtime", "tfjs-node/layers", "--runtime", "tfjs-node/graph")
    result = _run("verify", "--keras-model", source, *paths, "--samples", 32, "--report", tmp_path)
    assert result.exit_code == 0, result.output
    verdicts = {r: v["status"] for r, v in _results(tmp_path).items()}
    assert verdicts == {"tfjs-node/layers": "pass", "tfjs-node/graph": "pass"}


def test_a_keras3_rnn_given_initial_state_runs_unmasked(node_runtime, tmp_path, rerecord):
    """fz1-034, 070, 091: every path mismatched these Keras 3 models, a masked
    SimpleRNN given another RNN's state as initial_state. Keras 3 fills in
    `mask` only for a call on one tensor argument, so an RNN given
    initial_state= runs unmasked; tf-keras and tfjs passed it the mask. The
    twin now says mask=None in the node, and tfjs-bridge's SimpleRNN honours
    it (tfjs's predict hands every layer the mask). Negative controls: the
    twin without mask=None, and the layers file as it was written before."""
    import_tensorflow()
    import keras
    import numpy as np
    import tf_keras

    from tfjs_bridge.conversion import keras3

    L = keras.layers
    keras.utils.set_random_seed(14)
    x = keras.Input((5, 2), name="x")
    masked = L.Masking()(x)
    _, state = L.SimpleRNN(3, return_state=True, name="first")(masked)
    y = L.Dense(2, name="out")(L.SimpleRNN(3, name="second")(masked, initial_state=[state]))
    model = keras.Model(x, [y, state])
    source = tmp_path / "states.keras"
    model.save(source)

    xs = np.random.default_rng(0).uniform(-1, 1, (8, 5, 2)).astype("float32")
    xs[:, 3:] = 0  # padding: masked steps
    twin = keras3.to_tf_keras(model)
    config = twin.get_config()
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            for ref in node:
                ref[3].pop("mask", None)
    masked_twin = tf_keras.Model.from_config(config)
    masked_twin.set_weights(twin.get_weights())
    truth = model.predict(xs, verbose=0)[0]
    assert np.abs(twin.predict(xs, verbose=0)[0] - truth).max() < 1e-6
    assert np.abs(masked_twin.predict(xs, verbose=0)[0] - truth).max() > 0.1

    folder = tmp_path / "states"
    assert _run("export", source, folder).exit_code == 0
    result, verdicts = _verify(folder, tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert verdicts == dict.fromkeys(TFJS_NODE, "pass")

    # The layers file as the twin wrote it before: no mask=None in its nodes.
    layers_json = folder / "tfjs_layers" / "model.json"
    written = json.loads(layers_json.read_text())
    refs = [ref for layer in written["modelTopology"]["model_config"]["config"]["layers"]
            for node in layer["inbound_nodes"] for ref in node]  # fmt: skip
    assert sum(ref[3].pop("mask", 0) is None for ref in refs) == 2
    layers_json.write_text(json.dumps(written))
    rerecord(folder, "tfjs_layers/model.json")
    result = _run("verify", "--model-dir", folder, "--runtime", "tfjs-node/layers",
                  "--samples", 32, "--report", tmp_path / "before")  # fmt: skip
    assert result.exit_code == 1
    assert _results(tmp_path / "before")["tfjs-node/layers"]["status"] == "mismatch"


def test_a_mixed_float16_model_loads_in_tfjs_layers_as_float32(node_runtime, tmp_path, rerecord):
    """fz1-028, 083, 099, fz0-084: the layers path of a mixed_float16 model
    failed to load, "Unknown data type [object Object]": tf-keras writes each
    layer's dtype as a Policy object, and tfjs's Embedding builds its weights
    in it. The layers model.json now says float32 (the weights are float32
    under a mixed policy; tfjs computes in float32 only), judged at float16
    precision as the graph paths are. Negative controls: the file as the
    converter wrote it fails, and one wrong weight still mismatches."""
    import_tensorflow()
    import tf_keras

    from test_precision import _fault

    K = tf_keras.layers
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        tf_keras.utils.set_random_seed(15)
        model = tf_keras.Sequential([tf_keras.Input((6,), dtype="int32"),
                                     K.Embedding(20, 4, mask_zero=True), K.GRU(5),
                                     K.Dense(2, dtype="float32", name="head")])  # fmt: skip
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    source = tmp_path / "mixed.h5"
    model.save(source)
    folder = tmp_path / "mixed"
    assert _run("export", source, folder).exit_code == 0

    faulted = _fault(folder, rerecord, "head/kernel", 1.5, "mixed_faulted")
    as_written = tmp_path / "mixed_as_written"
    shutil.copytree(folder, as_written)
    manifest = json.loads((as_written / "manifest.json").read_text())
    manifest["model"] = manifest["spec"]["name"] = as_written.name
    (as_written / "manifest.json").write_text(json.dumps(manifest))
    layers_json = as_written / "tfjs_layers" / "model.json"
    written = json.loads(layers_json.read_text())
    mixed = {layer.name for layer in model.layers if layer.dtype_policy.name == "mixed_float16"}
    policy = {"class_name": "Policy", "config": {"name": "mixed_float16"}}
    for layer in written["modelTopology"]["model_config"]["config"]["layers"]:
        if layer["config"]["name"] in mixed:
            assert layer["config"]["dtype"] == "float32"
            layer["config"]["dtype"] = policy
    layers_json.write_text(json.dumps(written))
    rerecord(as_written, "tfjs_layers/model.json")

    models = ("--model-dir", folder, "--model-dir", faulted, "--model-dir", as_written)
    result = _run("verify", *models, "--runtime", "tfjs-node/layers", "--samples", 32,
                  "--report", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 1, result.output  # the negative controls
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["tolerances"]["mixed"]["precision"] == "float16"
    by = {r["model"]: r for r in saved["results"]}
    assert by["mixed"]["status"] == "pass", by["mixed"]["reason"]
    assert by["mixed"]["reason"].startswith("pass at float16 precision")
    assert by["mixed_faulted"]["status"] == "mismatch"
    assert by["mixed_as_written"]["status"] == "mismatch"
    assert "Unknown data type [object Object]" in by["mixed_as_written"]["reason"]


def test_a_masked_rnn_after_an_element_wise_merge(node_runtime, tmp_path, monkeypatch):
    """fz1-058: an RNN after Average([LSTM(return_sequences), Dense]) of a
    masked Embedding failed on every layers path ("Invalid TF_Status: 3",
    or "could not be broadcast" on the CPU backend): tfjs's element-wise
    merges pass on their first input's mask with an axis added in front,
    where Keras ANDs their inputs' masks. tfjs-bridge's (merge_masks.js) do
    as Keras, and add the Subtract tfjs lacks. The negative control, tfjs's
    mask (TFJS_BRIDGE_MERGE_MASK=stock), must not pass."""
    import_tensorflow()
    import tf_keras

    K = tf_keras.layers
    tf_keras.utils.set_random_seed(16)
    tokens = tf_keras.Input((6,), dtype="int32", name="tokens")
    embedded = K.Embedding(20, 4, mask_zero=True)(tokens)
    averaged = K.Average()([K.LSTM(4, return_sequences=True)(embedded), K.Dense(4)(embedded)])
    # Subtract: tfjs-layers has none (tfjs-bridge's, same module); not symmetric
    subtracted = K.Subtract()([K.GRU(4, return_sequences=True)(averaged), K.Dense(4)(averaged)])
    source = tmp_path / "merges.h5"
    tf_keras.Model(tokens, K.Dense(2)(K.LSTM(3)(subtracted))).save(source)
    folder = tmp_path / "merges"
    assert _run("export", source, folder).exit_code == 0

    result, verdicts = _verify_layers_paths(folder, tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert verdicts == {"tfjs-node/layers": "pass", "tfjs-cpu/layers": "pass"}

    monkeypatch.setenv("TFJS_BRIDGE_MERGE_MASK", "stock")
    result, verdicts = _verify_layers_paths(folder, tmp_path / "stock")
    assert result.exit_code == 1
    assert verdicts == {"tfjs-node/layers": "mismatch", "tfjs-cpu/layers": "mismatch"}


def test_rnn_layers_take_arguments_of_their_own_in_tfjs_predict(node_runtime, tmp_path,
                                                                monkeypatch):  # fmt: skip
    """tfjs's predict hands every layer one arguments object. tfjs's own
    SimpleRNN read the mask an Embedding(mask_zero) of another branch left
    there (masks.js covered only tfjs-bridge's layers); and an RNN given its
    initial state wrote it there (RNN.apply), so the next RNN of a masked
    run failed ("When inputs is an array, neither initialState or constants
    should be provided"). Both models pass the layers path now; with
    tfjs's shared arguments (TFJS_BRIDGE_SHARED_KWARGS=stock) neither does."""
    import_tensorflow()
    import tf_keras

    K = tf_keras.layers
    tf_keras.utils.set_random_seed(17)
    tokens = tf_keras.Input((6,), dtype="int32", name="tokens")
    numeric = tf_keras.Input((6, 3), name="numeric")
    label = K.Dense(2)(K.GRU(4)(K.Embedding(20, 4, mask_zero=True)(tokens)))
    score = K.Dense(1)(K.SimpleRNN(4)(K.Dense(3)(numeric)))
    tf_keras.Model([tokens, numeric], [label, score]).save(tmp_path / "beside.h5")

    x = tf_keras.Input((5, 2), name="x")
    masked = K.Masking()(x)
    _, h, c = K.LSTM(3, return_state=True)(masked)
    seq = K.LSTM(3, return_sequences=True)(masked, initial_state=[h, c])
    tf_keras.Model(x, K.Dense(2)(K.LSTM(3)(seq))).save(tmp_path / "states.h5")

    folders = []
    for name in ("beside", "states"):
        folders += ["--model-dir", tmp_path / name]
        assert _run("export", tmp_path / f"{name}.h5", tmp_path / name).exit_code == 0

    def verify(report):
        result = _run("verify", *folders, "--runtime", "tfjs-node/layers", "--samples", 32,
                      "--report", report)  # fmt: skip
        saved = json.loads((report / "report.json").read_text())["results"]
        return result, {(r["model"], r["runtime"]): r for r in saved}

    result, results = verify(tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in results.values()} == {"pass"} and len(results) == 2

    monkeypatch.setenv("TFJS_BRIDGE_SHARED_KWARGS", "stock")
    result, results = verify(tmp_path / "stock")
    assert result.exit_code == 1
    assert {r["status"] for r in results.values()} == {"mismatch"} and len(results) == 2
    assert results["beside", "tfjs-node/layers"]["max_abs"] > 0.1  # the tokens' padding skipped
    assert "neither initialState" in results["states", "tfjs-node/layers"]["reason"]


def test_a_fault_is_placed_in_a_keras3_model_built_on_a_dict(node_runtime, tmp_path):
    """fz1-058: the fuzzer placed no fault in a Keras 3 model whose inputs
    are a dict ("placing the fault: unexpected ValueError ... The structure
    of `inputs` doesn't match"): it called the model on a list. Now it calls
    it as verify does, and verify catches the fault it places."""
    import_tensorflow()
    import keras

    from tfjs_bridge.fuzz import faults

    L = keras.layers
    keras.utils.set_random_seed(18)
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    numeric = keras.Input((2,), name="numeric")
    joined = L.Concatenate()([L.GRU(3)(L.Embedding(20, 4)(tokens)), L.Dense(3)(numeric)])
    model = keras.Model({"tokens": tokens, "numeric": numeric}, L.Dense(2, name="head")(joined))
    model.save(tmp_path / "pair.keras")
    folder, faulted = tmp_path / "pair", tmp_path / "pair_faulted"
    assert _run("export", tmp_path / "pair.keras", folder).exit_code == 0
    shutil.copytree(folder, faulted)
    manifest = json.loads((faulted / "manifest.json").read_text())
    manifest["model"] = manifest["spec"]["name"] = faulted.name
    (faulted / "manifest.json").write_text(json.dumps(manifest))

    fault = faults.inject(faulted, "layers", 16)
    assert fault.layer == "head"
    result = _run("verify", "--model-dir", folder, "--model-dir", faulted, "--runtime",
                  "tfjs-node/layers", "--samples", 16, "--report", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 1
    saved = json.loads((tmp_path / "report" / "report.json").read_text())["results"]
    assert {r["model"]: r["status"] for r in saved} == {"pair": "pass", "pair_faulted": "mismatch"}


def test_a_masked_rnn_given_an_initial_state_outputs_zeros_before_its_first_real_step(
    node_runtime, tmp_path, monkeypatch
):
    """fz0-078: a GRU given another GRU's state as initial_state, reading
    end-padded tokens backwards, mismatched on every layers path (10 of 32
    values). Before a sample's first real step Keras outputs zeros (the
    previous output), tfjs the state, which is not zero when it was given:
    here for GRU (backwards), LSTM and SimpleRNN. Three layers given states
    in one model also checks that none starts from another's (tfjs's predict
    left the first one's in the arguments it hands every layer). The
    negative control runs tfjs's own (TFJS_BRIDGE_MASKED_START=stock) and
    must mismatch."""
    import_tensorflow()
    import tf_keras

    K = tf_keras.layers
    tf_keras.utils.set_random_seed(78)
    tokens = tf_keras.Input((8,), name="tokens")
    x = K.Embedding(12, 6, mask_zero=True)(tokens)
    _, state = K.GRU(4, return_state=True)(x)
    _, h, c = K.LSTM(4, return_state=True)(x)
    backwards = K.GRU(4, go_backwards=True, return_sequences=True)(x, initial_state=[state])
    lstm = K.LSTM(4)(x, initial_state=[h, c])
    simple = K.SimpleRNN(4, return_sequences=True)(x, initial_state=[state])
    pooled = [K.GlobalAveragePooling1D()(backwards), lstm, K.GlobalAveragePooling1D()(simple)]
    source = tmp_path / "encoder.h5"
    tf_keras.Model(tokens, K.Dense(3)(K.Concatenate()(pooled))).save(source)
    folder = tmp_path / "encoder"
    assert _run("export", source, folder).exit_code == 0

    result, verdicts = _verify_layers_paths(folder, tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert verdicts == {"tfjs-node/layers": "pass", "tfjs-cpu/layers": "pass"}

    monkeypatch.setenv("TFJS_BRIDGE_MASKED_START", "stock")
    result, verdicts = _verify_layers_paths(folder, tmp_path / "stock")
    assert result.exit_code == 1
    assert verdicts == {"tfjs-node/layers": "mismatch", "tfjs-cpu/layers": "mismatch"}


def test_a_tensor_fed_twice_to_one_layer_stays_alive_for_the_next(
    node_runtime, tmp_path, monkeypatch
):
    """Found while reproducing fz0-078: a layer fed one tensor twice
    (Multiply()([h, h]), an LSTM's initial_state=[s, s]) made tfjs's predict
    dispose that tensor after the layer, and a later layer reading it failed
    ("Cannot read properties of undefined (reading 'backend')"). The control
    loads the model as tfjs does (TFJS_BRIDGE_FED_TWICE=stock) and fails."""
    import_tensorflow()
    import tf_keras

    K = tf_keras.layers
    tf_keras.utils.set_random_seed(2)
    x = tf_keras.Input((5, 3), name="x")
    h, s = K.GRU(4, return_sequences=True, return_state=True)(x)
    squared = K.Multiply()([h, h])
    decoded = K.LSTM(4, return_sequences=True)(h, initial_state=[s, s])
    features = K.Concatenate()([squared, h, decoded, K.RepeatVector(5)(s)])
    source = tmp_path / "twice.h5"
    tf_keras.Model(x, K.Dense(2)(K.GlobalAveragePooling1D()(features))).save(source)
    folder = tmp_path / "twice"
    assert _run("export", source, folder).exit_code == 0

    result, verdicts = _verify_layers_paths(folder, tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert verdicts == {"tfjs-node/layers": "pass", "tfjs-cpu/layers": "pass"}

    monkeypatch.setenv("TFJS_BRIDGE_FED_TWICE", "stock")
    result, verdicts = _verify_layers_paths(folder, tmp_path / "stock")
    assert result.exit_code == 1
    assert set(verdicts.values()) == {"mismatch"}, verdicts
    assert "reading 'backend'" in _results(tmp_path / "stock")["tfjs-node/layers"]["reason"]


def _fused_activations(graph_json: Path) -> list[str]:
    """The activations fused into the graph model's _FusedMatMul nodes."""
    import base64

    topology = json.loads(graph_json.read_text())["modelTopology"]
    fused = []
    for node in topology["node"]:
        if node["op"] == "_FusedMatMul":
            names = [base64.b64decode(s).decode() for s in node["attr"]["fused_ops"]["list"]["s"]]
            fused += names[1:]  # after BiasAdd
    return fused


def test_a_graph_converted_with_onednn_on_keeps_tanh_apart(tmp_path, monkeypatch):
    """Found on a CPU with AVX-512 VNNI, where TensorFlow turns oneDNN on by
    default: the converter's Grappler fused MatMul + BiasAdd + Tanh into one
    _FusedMatMul, an activation no tfjs backend applies ("Activation: tanh has
    not been implemented for the Node.js backend"), so a SimpleRNN's graph
    model loaded nowhere. The converter now runs with oneDNN off
    (converter_process.converter_env): with oneDNN forced on in the user's
    environment, export's graph keeps Tanh apart and the graph path passes.
    Control: the stock converter in the same environment fuses it."""
    import_tensorflow()
    import tf_keras

    L = tf_keras.layers
    tf_keras.utils.set_random_seed(3)
    model = tf_keras.Sequential([L.Input((4, 2)), L.SimpleRNN(3), L.Dense(2)])
    source = tmp_path / "rnn.h5"
    model.save(source)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    folder = tmp_path / "rnn"
    assert _run("export", source, folder).exit_code == 0
    assert "Tanh" not in _fused_activations(folder / "tfjs_graph" / "model.json")
    result, verdicts = _verify(folder, tmp_path / "report")
    assert verdicts["tfjs-node/graph"] == "pass", result.output

    from tfjs_bridge.conversion.convert import converter_path

    stock = tmp_path / "stock"
    subprocess.run(
        [converter_path(), "--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
         "--signature_name=serving_default", "--saved_model_tags=serve",
         folder / "saved_model", stock],
        check=True, capture_output=True,
    )  # fmt: skip
    assert "Tanh" in _fused_activations(stock / "model.json")
