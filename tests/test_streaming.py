"""Streams (#24): the stream paths against Keras, through verify and the
worker, and `predict.js --stream` end to end. Keras is the truth: the whole
output sequence of a return_sequences model, and for a last-output model
the output on every prefix. The negative control (a stream that drops its
state between chunks) must fail the same check."""

import json
import subprocess

import numpy as np
import pytest

from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.folder.parity_record import MISMATCH, PASS, UNSUPPORTED
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import verify
from tfjs_bridge.runtime import streams
from tfjs_bridge.runtime.node_process import node_env, node_executable
from tfjs_bridge.runtime.runtimes import STREAM_RUNTIMES, resolve_runtimes
from tfjs_bridge.runtime.worker_process import NodeWorker

SAMPLES = 64
TARGET = 1e-5  # issue #24: a stream gives Keras's outputs within 1e-5
STREAMING = ["gru", "lstm", "lstm_sine", "gru_keras"]  # last-output GRU/LSTM models
BIDIRECTIONAL = ["rnn_stack", "spam_rnn"]


def _stream_paths():
    return [STREAM_RUNTIMES["tfjs-node/stream"], STREAM_RUNTIMES["tfjs-cpu/stream"]]


ARRAY = STREAM_RUNTIMES["tfjs-node/stream-array"]  # array ops at every batch


@pytest.fixture(scope="module")
def sequence_model(tmp_path_factory, node_runtime):
    """A return_sequences stack over token ids with padding (mask_zero):
    Embedding -> GRU (reset after) -> SimpleRNN -> LSTM -> Dense, random weights."""
    from tfjs_bridge.conversion.export import export_model

    import_tensorflow()
    import tf_keras

    tf_keras.utils.set_random_seed(24)
    ids = tf_keras.Input((12,), dtype="int32", name="ids")
    h = tf_keras.layers.Embedding(30, 6, mask_zero=True)(ids)
    h = tf_keras.layers.GRU(8, return_sequences=True)(h)
    h = tf_keras.layers.SimpleRNN(6, return_sequences=True)(h)
    h = tf_keras.layers.LSTM(5, return_sequences=True)(h)
    out = tf_keras.layers.Dense(3)(h)
    root = tmp_path_factory.mktemp("streams")
    tf_keras.Model(ids, out).save(root / "seq.h5")
    export_model(root / "seq.h5", root / "seq", name="seq")
    return root / "seq"


def test_stream_paths_are_named_only(node_runtime):
    assert not any(rt.stream for rt in resolve_runtimes([]))
    assert not any(rt.stream for rt in resolve_runtimes(["tfjs-node"]))
    assert [rt.name for rt in resolve_runtimes(["tfjs-node/stream"])] == ["tfjs-node/stream"]


def test_registry_models_stream_as_keras_computes(node_runtime, small_models):
    subjects = [subject_from_folder(small_models / n) for n in STREAMING + BIDIRECTIONAL]
    report = verify(subjects, [*_stream_paths(), ARRAY], SAMPLES, explicit_runtimes=True)
    results = {(r.model, r.runtime): r for r in report.results}
    subject_steps = {s.name: s.input_shape[0] for s in subjects}
    for model in STREAMING:
        # which ops stepped them, by batch size: Node's crossover (64 rows of
        # the small lstm, 1,104 multiply-adds a step each, are few; of the others,
        # 4,256 to 18,304 each, many: > 250,000), or array ops asked for
        many = "array" if model == "lstm" else "direct"
        assert results[(model, "tfjs-node/stream")].figures["stream_ops"] == {
            str(SAMPLES): many, "1": "array"}  # fmt: skip
        assert results[(model, ARRAY.name)].figures["stream_ops"] == {
            str(SAMPLES): "array", "1": "array"}  # fmt: skip
        assert results[(model, "tfjs-cpu/stream")].figures["stream_ops"] == {
            str(SAMPLES): "tfjs", "1": "tfjs"}  # fmt: skip
        for rt in [*_stream_paths(), ARRAY]:
            r = results[(model, rt.name)]
            assert r.status == PASS, (model, rt.name, r.reason)
            assert r.figures["samples"] == SAMPLES and r.figures["outside"] == 0
            assert r.figures["max_abs"] <= TARGET, (model, rt.name, r.figures["max_abs"])
            # every step's output, against Keras on the prefix ending there
            assert r.figures["truth"].startswith("Keras on every prefix"), r.figures["truth"]
            assert r.figures["outputs"][0]["shape"][:2] == [SAMPLES, subject_steps[model]]
    for model in BIDIRECTIONAL:
        r = results[(model, "tfjs-node/stream")]
        assert r.status == UNSUPPORTED, (model, r.status, r.reason)
        assert "Bidirectional" in r.reason and "backward direction" in r.reason, r.reason
    # (rnn_stack and spam_rnn pass no path here, so the report is not `ok`; nothing mismatched)
    assert not any(r.status == MISMATCH for r in report.results)


def test_sequence_model_streams_as_keras_computes(sequence_model):
    subject = subject_from_folder(sequence_model)
    paths = [*_stream_paths(), ARRAY, STREAM_RUNTIMES["tfjs-wasm/stream"]]
    paths += resolve_runtimes(["tfjs-node/layers"])
    report = verify([subject], paths, SAMPLES, explicit_runtimes=True)
    assert sorted(r.runtime for r in report.results) == sorted(rt.name for rt in paths)
    for r in report.results:
        assert r.status == PASS, (r.runtime, r.reason)
        assert r.figures["max_abs"] <= TARGET, (r.runtime, r.figures["max_abs"])
    # padded samples were fed (0 ids), so the mask was exercised
    assert report.inputs["seq"][0]["padded_fraction"] > 0, report.inputs


@pytest.mark.parametrize("model", ["gru_keras", "lstm_sine"])
def test_last_output_streams_give_keras_on_every_prefix(node_runtime, small_models, model):
    """Every step's output of a last-output model, fed one step at a time,
    is what Keras gives on the prefix ending there."""
    import_tensorflow()
    import tf_keras

    folder = small_models / model
    keras_model = tf_keras.models.load_model(folder / "keras.h5", compile=False)
    steps, features = keras_model.input_shape[1:]
    # the same layers on a free time axis, so that a prefix can be fed
    x_in = tf_keras.Input((None, features))
    y = x_in
    for layer in keras_model.layers:
        y = layer(y)
    free = tf_keras.Model(x_in, y)
    x = np.random.default_rng(0).uniform(-1, 1, (16, steps, features)).astype(np.float32)
    if model == "gru_keras":
        x = (x + 1) / 2  # MNIST rows are in [0, 1]
    want = np.stack([free(x[:, : t + 1]).numpy() for t in range(steps)], axis=1)
    with NodeWorker("tensorflow") as worker:
        feeding = streams.StreamFeeding(worker, {"chunks": "steps", "per_step": True})
        loaded = feeding.load(folder, "layers")
        (got,), _ = worker.predict(loaded["handle"], x)
    assert got.shape == want.shape == (16, steps, keras_model.output_shape[-1])
    assert np.abs(got - want).max() <= TARGET
    assert np.abs(want[:, 0] - want[:, -1]).max() > 1e-3  # the prefixes differ: not vacuous


def test_a_stream_that_drops_its_state_fails_verify(node_runtime, small_models, monkeypatch):
    """The negative control: the same check, a stream that forgets its state
    after every chunk. verify must call it a mismatch."""
    monkeypatch.setitem(streams.VERIFY_FEED, "drop_state", True)
    subject = subject_from_folder(small_models / "gru_keras")
    report = verify([subject], _stream_paths()[:1], SAMPLES, explicit_runtimes=True)
    (r,) = report.results
    assert r.status == MISMATCH, (r.status, r.reason)
    assert not report.ok


def test_a_wrong_array_op_fails_verify(node_runtime, small_models, monkeypatch):
    """The negative control of the array ops: with each product's last term
    dropped (TFJS_BRIDGE_ARRAY_OPS=off-by-one, node/lib/layers/array_ops.js),
    the array path is a mismatch, and so is tfjs-node/stream, through its
    batches of one (stepped on array ops by Node's choice), while its batch
    of 64 (TensorFlow's ops) still agrees: the array ops run and are judged."""
    monkeypatch.setenv("TFJS_BRIDGE_ARRAY_OPS", "off-by-one")
    subject = subject_from_folder(small_models / "gru")
    report = verify([subject], [_stream_paths()[0], ARRAY], SAMPLES, explicit_runtimes=True)
    results = {r.runtime: r for r in report.results}
    assert results[ARRAY.name].status == MISMATCH, results[ARRAY.name].reason
    assert results[ARRAY.name].figures["max_abs"] > 1e-3
    node = results["tfjs-node/stream"]
    assert node.status == MISMATCH, (node.status, node.reason)
    assert node.figures["max_abs"] <= TARGET  # the batch of 64, on TensorFlow's ops
    assert node.figures["stream_ops"] == {str(SAMPLES): "direct", "1": "array"}


def _predict_stream(folder, lines):
    return subprocess.run(
        [node_executable(), str(NODE_DIR / "predict.js"), "--model", str(folder), "--stream"],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=node_env(),
        timeout=120,
    )


def test_predict_stream_reads_steps_and_resets(node_runtime, small_models):
    """predict.js --stream: one output line per step, the last-output model's
    output on each prefix (array ops: one stream); {"reset": true} starts a
    new sequence; {"info": true} says which ops step it."""
    import_tensorflow()
    import tf_keras

    folder = small_models / "lstm_sine"
    keras_model = tf_keras.models.load_model(folder / "keras.h5", compile=False)
    steps = 5
    seq = np.random.default_rng(1).uniform(-1, 1, (steps, 1)).astype(np.float32)
    x_in = tf_keras.Input((None, 1))
    y = x_in
    for layer in keras_model.layers:
        y = layer(y)
    free = tf_keras.Model(x_in, y)
    want = [free(seq[None, : t + 1]).numpy()[0] for t in range(steps)]
    lines = [json.dumps(row.tolist()) for row in seq]
    done = _predict_stream(folder, ['{"info": true}', *lines, '{"reset": true}', lines[0]])
    assert done.returncode == 0, done.stderr
    info, *answers = done.stdout.splitlines()
    # which ops step it, on stdout when asked (one stream of 4,256 multiply-adds a step)
    assert json.loads(info) == {"ops": "array", "why": "4256 multiply-adds a step <= 250000",
                                "backend": "tensorflow"}  # fmt: skip
    got = [np.array(json.loads(line)) for line in answers]
    assert len(got) == steps + 1
    assert max(np.abs(g - w).max() for g, w in zip(got, want, strict=False)) <= TARGET
    assert np.abs(got[-1] - want[0]).max() <= TARGET  # after the reset: the first step again
    assert np.abs(got[1] - want[0]).max() > 1e-4  # and the state did matter


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[0.1, 0.2]", "want an array of 1 numbers"),
        ("not json", "not JSON"),
        ('{"restart": true}', '{"reset": true}'),
        ('["a"]', "want an array of 1 numbers"),
    ],
)
def test_predict_stream_bad_line_is_one_error_line(node_runtime, small_models, line, message):
    done = _predict_stream(small_models / "lstm_sine", ["[0.5]", line])
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("error: stdin line 2: ") and message in done.stderr
    assert len(done.stdout.splitlines()) == 1  # the good step before it was answered


def test_predict_stream_help_and_refusals(node_runtime, small_models):
    helped = subprocess.run([node_executable(), str(NODE_DIR / "predict.js"), "--help"],
                            capture_output=True, text=True, env=node_env(), timeout=60)  # fmt: skip
    assert helped.returncode == 0 and "--stream" in helped.stdout
    refused = _predict_stream(small_models / "rnn_stack", ["[0]"])
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: cannot stream: ") and "Bidirectional" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


def test_bench_refuses_stream_paths_in_one_line():
    """bench would time the whole layers model under a stream path's name."""
    from click.testing import CliRunner

    from tfjs_bridge.cli import main

    done = CliRunner().invoke(main, ["bench", "gru", "--runtime", "tfjs-node/stream"])
    assert done.exit_code == 2
    assert "bench does not time stream paths yet (tfjs-node/stream)" in done.output
