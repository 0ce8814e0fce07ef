"""Keras stateful=True models (#24 item 2, #23 item 5): exported as their
stateless twin, checked against the stateful model itself. Whole sequences:
the stateful model reset before each batch of its fixed size. Stream paths:
the stateful model fed the same chunks as the Node streams, its state
carried between calls. Negative controls: a stream that drops its state
between chunks, and a truth that is not reset between batches, each fail."""

import json

import numpy as np
import pytest

from test_streaming import _predict_stream
from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.folder.parity_record import MISMATCH, PASS, UNSUPPORTED
from tfjs_bridge.parity import stateful as stateful_truth
from tfjs_bridge.parity.probes import probe_inputs
from tfjs_bridge.parity.truth import subject_from_folder, truth_for
from tfjs_bridge.parity.verify import verify
from tfjs_bridge.runtime import streams
from tfjs_bridge.runtime.runtimes import resolve_runtimes

TARGET = 1e-5
SAMPLES = 30  # not a multiple of the batch (4): the last batch is padded


def _exported(root, name, model):
    from tfjs_bridge.conversion.export import export_model

    model.save(root / f"{name}.h5")
    export_model(root / f"{name}.h5", root / name, name=name)
    return root / name


@pytest.fixture(scope="module")
def stacked(tmp_path_factory, node_runtime):
    """batch 4, 10 steps, padded: Masking -> GRU -> LSTM -> Dense, both RNNs
    stateful and return_sequences (the output is every step's)."""
    import_tensorflow()
    import tf_keras as K

    K.utils.set_random_seed(24)
    model = K.Sequential([
        K.Input((10, 3), batch_size=4),
        K.layers.Masking(0.0),
        K.layers.GRU(5, stateful=True, return_sequences=True, name="gru"),
        K.layers.LSTM(4, stateful=True, return_sequences=True, name="lstm"),
        K.layers.Dense(2, name="head"),
    ])  # fmt: skip
    return model, _exported(tmp_path_factory.mktemp("stateful"), "stacked", model)


def test_the_manifest_records_the_states_and_the_formats_hold_a_stateless_twin(stacked):
    import tf_keras as K

    model, folder = stacked
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stateful"] == {
        "batch": 4,
        "states": [
            {"layer": "gru", "class": "GRU", "shapes": [[4, 5]]},
            {"layer": "lstm", "class": "LSTM", "shapes": [[4, 4], [4, 4]]},
        ],
    }
    assert manifest["reference"] == {"kind": "tf_keras", "file": "stateful.h5"}
    twin = K.models.load_model(folder / "keras.h5", compile=False)
    assert twin.input_shape == (None, 10, 3)
    assert not any(getattr(layer, "stateful", False) for layer in twin.layers)
    # the fact the export rests on: after a reset, whole sequences give the same
    x = np.random.default_rng(0).uniform(-1, 1, (4, 10, 3)).astype(np.float32)
    model.reset_states()
    assert np.abs(model(x).numpy() - twin(x).numpy()).max() <= 1e-6
    assert np.abs(model(x).numpy() - twin(x).numpy()).max() > 1e-3  # no reset: it differs


def test_every_path_and_the_streams_pass_against_the_stateful_model(stacked):
    """Without an explicit path list, a stateful model's stream paths are verified too."""
    _, folder = stacked
    subject = subject_from_folder(folder)
    paths = resolve_runtimes(["tfjs-node/layers", "tfjs-node/saved_model", "tfjs-cpu/layers"])
    report = verify([subject], paths, SAMPLES)
    results = {r.runtime: r for r in report.results}
    assert sorted(results) == ["tfjs-cpu/layers", "tfjs-cpu/stream", "tfjs-node/layers",
                               "tfjs-node/saved_model", "tfjs-node/stream"]  # fmt: skip
    for name, r in results.items():
        assert r.status == PASS, (name, r.reason)
        assert r.figures["max_abs"] <= TARGET, (name, r.figures["max_abs"])
        assert r.figures["truth"].startswith("Keras stateful model"), r.figures["truth"]
    assert "fed chunks of" in results["tfjs-node/stream"].figures["truth"]
    assert report.ok


def test_the_streams_truth_is_keras_fed_in_chunks(stacked):
    """Keras fed chunks, its state carried between calls, gives every step
    what it gives on the whole sequence, but at a padded step before any kept
    one of its call: there it gives 0 (a call starts its outputs from zeros)
    where the whole sequence, and a stream, give the output before it. The
    truth takes that output (and says so); the steps differ from one another."""
    _, folder = stacked
    truth = truth_for(subject_from_folder(folder))
    xs = probe_inputs(truth.subject.signature, SAMPLES)
    whole = truth.python_side(xs)
    (chunked,), (sequences,) = truth._streamed(whole)
    assert sequences and chunked.shape == whole[0].shape == (SAMPLES, 10, 2)
    assert np.abs(chunked - whole[0]).max() <= 1e-6
    assert np.abs(chunked[:, 0] - chunked[:, -1]).max() > 1e-3
    padded = (xs[0] == 0).all(-1)
    assert 0 < padded.mean() < 1, padded.mean()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(stateful_truth, "_carried", lambda y, real: y)
    try:
        truth._chunked.clear()
        (raw,), _ = truth._streamed(whole)
    finally:
        monkeypatch.undo()
    off = np.abs(raw - whole[0]).max(-1) > 1e-6
    assert off.any() and not off[~padded].any()  # only padded steps, and only without it


def test_negative_controls_a_forgetting_stream_and_an_unreset_truth_fail(stacked, monkeypatch):
    _, folder = stacked
    subject = subject_from_folder(folder)
    paths = resolve_runtimes(["tfjs-node/layers", "tfjs-node/stream"])
    with monkeypatch.context() as patch:
        patch.setitem(streams.VERIFY_FEED, "drop_state", True)
        report = verify([subject], paths, SAMPLES, explicit_runtimes=True)
    got = {r.runtime: r.status for r in report.results}
    assert got == {"tfjs-node/layers": PASS, "tfjs-node/stream": MISMATCH}, report.results
    # the truth carrying its state from one batch of 4 into the next
    monkeypatch.setattr(stateful_truth, "reset_states", lambda model: None)
    report = verify([subject], paths[:1], SAMPLES, explicit_runtimes=True)
    assert [r.status for r in report.results] == [MISMATCH]


def test_predict_stream_is_the_stateful_model_fed_step_by_step(stacked):
    """predict.js --stream feeds one sequence (its own batch of 1, whatever
    Keras's fixed batch): against the Keras stateful model called on one step
    at a time (the same layers and weights on a free time axis, the sequence
    in row 0 of its batch of 4), reset between sequences."""
    import tf_keras as K

    model, folder = stacked
    stepper = K.Sequential([K.Input((None, 3), batch_size=4),
                            *(K.layers.deserialize({"class_name": type(layer).__name__,
                                                    "config": layer.get_config()})
                              for layer in model.layers)])  # fmt: skip
    stepper.set_weights(model.get_weights())
    rng = np.random.default_rng(2)
    first, second = (rng.uniform(-1, 1, (n, 3)).astype(np.float32) for n in (5, 3))
    want = []
    for seq in (first, second):
        stepper.reset_states()
        for step in seq:
            rows = np.zeros((4, 1, 3), np.float32)
            rows[0, 0] = step
            want.append(stepper(rows).numpy()[0, 0])
    lines = [json.dumps(step.tolist()) for step in first]
    lines += ['{"reset": true}', *[json.dumps(step.tolist()) for step in second]]
    done = _predict_stream(folder, lines)
    assert done.returncode == 0, done.stderr
    got = [np.array(json.loads(line)) for line in done.stdout.splitlines()]
    assert len(got) == len(want) == 8
    assert max(np.abs(g - w).max() for g, w in zip(got, want, strict=True)) <= TARGET
    assert np.abs(got[1] - got[0]).max() > 1e-3  # the state moved on
    assert np.abs(got[5] - got[0]).max() > 1e-3  # a new sequence: another first step
    assert got[0].shape == (2,)  # one step's output of a return_sequences model


def test_a_stateful_bidirectional_runs_whole_and_cannot_stream(tmp_path, node_runtime):
    import_tensorflow()
    import tf_keras as K

    K.utils.set_random_seed(6)
    model = K.Sequential([K.Input((6, 2), batch_size=3),
                          K.layers.Bidirectional(K.layers.LSTM(3, stateful=True), name="bi"),
                          K.layers.Dense(2)])  # fmt: skip
    folder = _exported(tmp_path, "bi", model)
    manifest = json.loads((folder / "manifest.json").read_text())
    bi = model.get_layer("bi")  # its directions' names depend on Keras's name counters
    directions = [bi.forward_layer.name, bi.backward_layer.name]
    assert directions[0].startswith("forward_lstm") and directions[1].startswith("backward_lstm")
    assert [s["layer"] for s in manifest["stateful"]["states"]] == directions
    report = verify([subject_from_folder(folder)], resolve_runtimes(["tfjs-node/layers"]), SAMPLES)
    got = {r.runtime: r for r in report.results}
    assert got["tfjs-node/layers"].status == PASS, got["tfjs-node/layers"].reason
    stream = got["tfjs-node/stream"]
    assert stream.status == UNSUPPORTED
    why = stream.reason
    assert why.startswith("layer bi (Bidirectional): its backward direction"), why
    assert report.ok
