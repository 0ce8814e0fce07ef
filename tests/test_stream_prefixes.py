"""Issue #24 deliver 3: a last-output model's stream path is checked against
Keras on every prefix x[:, :t] ("the output if the sequence ended here",
what a stream gives after each step), not on the whole sequence's last
output alone. The negative control is a stream right at the end of each
chunk and wrong before it: the every-prefix check fails it, the old
last-output check did not."""

import numpy as np
import pytest

from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.folder.parity_record import MISMATCH, PASS
from tfjs_bridge.parity import every_prefix
from tfjs_bridge.parity.truth import KerasTruth, subject_from_folder, truth_for
from tfjs_bridge.parity.verify import inputs_for, verify
from tfjs_bridge.runtime import streams
from tfjs_bridge.runtime.runtimes import STREAM_RUNTIMES

SAMPLES = 64
TARGET = 1e-5  # issue #24: a stream gives Keras's outputs within 1e-5
NODE_STREAM = STREAM_RUNTIMES["tfjs-node/stream"]


@pytest.fixture(scope="module")
def masked_model(tmp_path_factory, node_runtime):
    """A last-output model over token ids with padding (mask_zero):
    Embedding -> GRU (return_sequences) -> LSTM -> Dense softmax, random
    weights; its sequences are 12 steps."""
    from tfjs_bridge.conversion.export import export_model

    import_tensorflow()
    import tf_keras

    tf_keras.utils.set_random_seed(2024)
    ids = tf_keras.Input((12,), dtype="int32", name="ids")
    h = tf_keras.layers.Embedding(30, 6, mask_zero=True)(ids)
    h = tf_keras.layers.GRU(8, return_sequences=True)(h)
    h = tf_keras.layers.LSTM(7)(h)
    out = tf_keras.layers.Dense(4, activation="softmax")(h)
    root = tmp_path_factory.mktemp("prefixes")
    tf_keras.Model(ids, out).save(root / "masked.h5")
    export_model(root / "masked.h5", root / "masked", name="masked")
    return root / "masked"


def _stream_results(folders):
    """verify of the folders' tfjs-node/stream path, in one worker: model -> PathResult."""
    subjects = [subject_from_folder(folder) for folder in folders]
    report = verify(subjects, [NODE_STREAM], SAMPLES, explicit_runtimes=True)
    return {r.model: r for r in report.results}


@pytest.fixture(scope="module")
def checked(small_models, masked_model):
    return _stream_results([small_models / "gru", masked_model])


def test_last_output_stream_passes_on_every_prefix(checked):
    r = checked["gru"]
    assert r.status == PASS, r.reason
    assert r.figures["truth"].startswith("Keras on every prefix x[:, :t], t = 1..28 (one run")
    (output,) = r.figures["outputs"]
    assert output["shape"] == [SAMPLES, 28, 10]  # every step's output was compared
    assert r.figures["max_abs"] <= TARGET and r.figures["outside"] == 0
    assert r.figures["argmax_total"] == SAMPLES * 28


def test_masked_stream_passes_on_every_prefix(checked, masked_model):
    """Padded steps (pre and post, every length): a prefix ending at a
    masked step is Keras's output before it, carried (the zero state's at
    leading padding), and the stream gives the same."""
    r = checked["masked"]
    assert r.status == PASS, r.reason
    assert r.figures["truth"].endswith("a prefix ending at a masked step: Keras's output "
                                       "before it, carried")  # fmt: skip
    assert r.figures["outputs"][0]["shape"] == [SAMPLES, 12, 4]
    assert r.figures["max_abs"] <= TARGET

    subject = subject_from_folder(masked_model)
    truth = truth_for(subject)
    xs, _ = inputs_for(subject, SAMPLES, {}, None)  # what verify fed
    (found,), _ = every_prefix.outputs_on_every_prefix(
        truth.keras_model, xs, subject.signature.names
    )
    padded = xs[0] == 0
    assert 0.1 < padded.mean() < 0.9, padded.mean()
    carried = padded[:, 1:]
    assert carried.sum() > 50
    assert np.array_equal(found[:, 1:][carried], found[:, :-1][carried])
    leading = found[padded[:, 0], 0]  # no kept step yet: the zero state's output, alike
    assert len(leading) > 1 and np.abs(leading - leading[0]).max() == 0


def test_one_run_is_every_prefix_run_one_by_one(small_models, masked_model):
    """The one-run truth (the last RNN returning every step) is Keras run on
    each prefix; and the prefixes do differ (the check is not vacuous)."""
    for folder in (small_models / "gru", masked_model):
        subject = subject_from_folder(folder)
        truth = truth_for(subject)
        xs, _ = inputs_for(subject, 32, {}, None)
        names = subject.signature.names
        fast, how = every_prefix.outputs_on_every_prefix(truth.keras_model, xs, names)
        assert how.startswith("one run"), (folder.name, how)
        whole = truth(xs)
        assert np.abs(fast[0][:, -1] - whole[0]).max() <= 1e-6, folder.name
        split = every_prefix._last_output_split
        try:
            every_prefix._last_output_split = lambda model: None
            slow, how = every_prefix.outputs_on_every_prefix(truth.keras_model, xs, names)
        finally:
            every_prefix._last_output_split = split
        steps = xs[0].shape[1]
        assert how == f"{steps} runs, one per prefix"
        assert fast[0].shape == slow[0].shape == (32, steps, *whole[0].shape[1:])
        assert np.abs(fast[0] - slow[0]).max() <= 1e-6, folder.name
        assert np.abs(fast[0][:, 1:] - fast[0][:, :-1]).max() > 1e-3, folder.name


def _tf_keras_masked_floats():
    import tf_keras

    tf_keras.utils.set_random_seed(5)
    return tf_keras.Sequential([
        tf_keras.Input((7, 3)), tf_keras.layers.Masking(0.0),
        tf_keras.layers.LSTM(5, return_sequences=True), tf_keras.layers.GRU(4),
        tf_keras.layers.BatchNormalization(), tf_keras.layers.Dense(2),
    ])  # fmt: skip


def _keras3_masked_tokens():
    import keras

    keras.utils.set_random_seed(6)
    ids = keras.Input((9,), dtype="int32")
    h = keras.layers.Embedding(20, 4, mask_zero=True)(ids)
    h = keras.layers.GRU(6, return_sequences=True)(h)
    h = keras.layers.SimpleRNN(5)(h)
    return keras.Model(ids, keras.layers.Dense(3, activation="softmax")(h))


@pytest.mark.parametrize("build", [_tf_keras_masked_floats, _keras3_masked_tokens])
def test_one_run_holds_for_keras3_and_a_head_built_for_one_step(build):
    """The same on models built here: a tf-keras Sequential with Masking and
    a BatchNormalization head (built for [batch, features]: its axis is 1,
    so it must run on each step's features, not on the sequence), and a
    Keras 3 functional model over token ids (its RNN takes the mask beside
    its input)."""
    import_tensorflow()
    model = build()
    rng = np.random.default_rng(0)
    shape = (24, *model.inputs[0].shape[1:])
    x = rng.integers(1, 20, shape).astype(np.int32) if len(shape) == 2 else (
        rng.uniform(-1, 1, shape).astype(np.float32))  # fmt: skip
    for i, length in enumerate(rng.integers(0, shape[1], 24)):
        x[i, length:] = 0  # post-padding, every sample its own length (0: all padded)
    fast, how = every_prefix.outputs_on_every_prefix(model, [x])
    assert how.startswith("one run"), how
    split = every_prefix._last_output_split
    try:
        every_prefix._last_output_split = lambda model: None
        slow, _ = every_prefix.outputs_on_every_prefix(model, [x])
    finally:
        every_prefix._last_output_split = split
    assert np.abs(fast[0] - slow[0]).max() <= 1e-6
    assert np.abs(fast[0][:, -1] - np.asarray(model(x))).max() <= 1e-6


def test_a_stream_wrong_before_each_chunks_end_fails(small_models, masked_model, monkeypatch):
    """The negative control: each chunk's steps all answered with its last
    output, so the stream is right at the end of the sequence and wrong
    before it. The every-prefix check fails it; the old check, the last
    output alone (no per-step feed), passes it; so does the fallback for a
    model Keras cannot run on a prefix."""
    monkeypatch.setitem(streams.VERIFY_FEED, "stale_steps", True)
    stale = _stream_results([small_models / "gru", masked_model])
    for model, r in stale.items():
        assert r.status == MISMATCH, (model, r.status, r.reason)
        assert "outside tolerance" in r.reason, (model, r.reason)
        per_step = r.figures["outputs"][0]["max_abs_per_timestep"]
        assert per_step[-1] <= TARGET and max(per_step) > 10 * TARGET, (
            model
        )  # right at the end only

    # where Keras refuses to run a prefix, the stream's last step is judged alone, said so
    def refuse(model, xs, names=None):
        raise ValueError("no prefix here\nsecond line")

    monkeypatch.setattr(every_prefix, "outputs_on_every_prefix", refuse)
    last = _stream_results([small_models / "gru"])["gru"]
    assert last.status == PASS, last.reason
    said = "its last output only (Keras cannot run the model on a prefix: no prefix here)"
    assert last.figures["truth"] == f"Keras on the whole sequence, {said}"
    assert last.figures["outputs"][0]["shape"] == [SAMPLES, 10]

    monkeypatch.setattr(KerasTruth, "stream_feed", lambda self, xs: None)  # the old check
    old = _stream_results([small_models / "gru"])["gru"]
    assert old.status == PASS, old.reason
    assert old.figures["truth"] == "Keras on the whole sequence, its last output only"
    assert old.figures["outputs"][0]["shape"] == [SAMPLES, 10]
