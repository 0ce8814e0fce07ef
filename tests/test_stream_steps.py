"""`bench --stream`'s Python side (#24): the stateful twin stepped one step at
a time, by predict_on_batch and by a tf.function, gives Keras's output on
every prefix, the figure it times is that work; the negative control, a
stepper that forgets its state after each step, fails the same check. And
the command end to end on the small models (figures printed, not judged)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfjs_bridge.bench import stream_steps
from tfjs_bridge.cli import main
from tfjs_bridge.conversion.keras_loader import load_keras
from tfjs_bridge.conversion.stateful import chunkable

TARGET = 1e-5
STEPS = 6


def _prefix_truth(model, x):
    """Keras (stateless, time axis freed) on every prefix of x: [T, ...]."""
    free = chunkable(model)  # a stateless model's twin with a free time axis
    return np.stack([free.predict_on_batch(x[:, : t + 1])[0] for t in range(x.shape[1])])


def _forgetting(stepper):
    """The negative control: a stepper that starts every step from the zero state."""

    def step(x):
        stepper.reset()
        return stepper.step(x)

    return stream_steps.Stepper(f"{stepper.name}, forgetting", step, stepper.reset,
                                stepper.prepare)  # fmt: skip


@pytest.mark.parametrize("name", ["gru", "lstm_sine"])
def test_stateful_steppers_give_keras_on_every_prefix(small_models, name):
    model = load_keras(small_models / name / "keras.h5")
    x = stream_steps.sequence_of(small_models / name, STEPS)
    want = _prefix_truth(model, x)
    assert np.abs(want[1:] - want[:-1]).max() > 1e-3  # the steps differ: the check can see a slip
    steppers = stream_steps.keras_steppers(model)
    assert [s.name for s in steppers] == ["Python stateful, predict_on_batch",
                                          "Python stateful, tf.function"]  # fmt: skip
    for stepper in steppers:
        got = stream_steps.stepped_outputs(stepper, x)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= TARGET, stepper.name
        # twice from the start: reset() gives the same answers again
        assert np.abs(stream_steps.stepped_outputs(stepper, x) - want).max() <= TARGET
        forgetting = stream_steps.stepped_outputs(_forgetting(stepper), x)
        assert np.abs(forgetting - want).max() > 1e-3, f"{stepper.name}: the control passed"
        assert np.abs(forgetting[0] - want[0]).max() <= TARGET  # only the carried state differs


def test_time_steps_times_every_step_of_every_timed_pass(small_models):
    model = load_keras(small_models / "lstm_sine" / "keras.h5")
    x = stream_steps.sequence_of(small_models / "lstm_sine", 4)
    calls = []
    [stepper, _] = stream_steps.keras_steppers(model)
    counting = stream_steps.Stepper("counting", lambda s: calls.append(s) or stepper.step(s),
                                    stepper.reset, stepper.prepare)  # fmt: skip
    ms = stream_steps.time_steps(counting, x, reps=3)
    assert len(ms) == 3 * 4 and len(calls) == 4 * 4  # one untimed pass first
    assert all(m > 0 for m in ms)


def test_bench_stream_prints_both_sides_side_by_side(small_models, tmp_path, node_runtime):
    args = ["--steps", "5", "--reps", "1", "--out", str(small_models), "--report", str(tmp_path)]
    done = CliRunner().invoke(main, ["bench", "--stream", "lstm_sine", *args])
    assert done.exit_code == 0, done.output
    for row in ["tfjs-node stream step ", "tfjs-node stream step, array ops",
                "tfjs-node stream step, TensorFlow ops (direct)",
                "one stream's step <= Python's stateful step (tf.function): ",
                "16 streams stepped together: array ops", "(Node's choice: ",
                "tfjs-node re-running the 5-step prefix",
                "Python stateful, predict_on_batch", "Python stateful, tf.function",
                "stream step / Python stateful, tf.function"]:  # fmt: skip
        assert row in done.stdout
    report = json.loads((tmp_path / "stream.json").read_text())
    figures = report["models"]["lstm_sine"]
    assert figures["tfjs-node stream step"]["n"] == 5
    assert figures["tfjs-node stream step, array ops"]["n"] == 5
    assert figures["tfjs-node stream step, TensorFlow ops (direct)"]["n"] == 5
    # one stream of the small lstm_sine (4,256 multiply-adds a step) steps on array ops
    assert figures["stream_step_ops"]["ops"] == "array"
    assert figures["tfjs-node stream step"] == figures["tfjs-node stream step, array ops"]
    assert isinstance(figures["target"]["met"], bool)
    assert set(figures["streams_stepped_together"]) == {"16", "256"}
    assert figures["Python stateful, tf.function"]["n"] == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stream", "--serve"], "bench takes --serve or --stream, not both"),
        (["--stream", "--batch", "2"], "bench --stream takes no --batch"),
        (["--serve", "--steps", "5"], "bench --serve takes no --steps"),
        (["--reps", "2"], "--steps and --reps go with --stream"),
    ],
)
def test_bench_stream_options_are_its_own(args, message):
    done = CliRunner().invoke(main, ["bench", "gru", *args])
    assert (done.exit_code, done.stderr) == (2, f"error: {message}\n")


def test_bench_stream_refuses_a_token_model_in_one_line(small_models):
    done = CliRunner().invoke(main, ["bench", "--stream", "spam", "--out", str(small_models)])
    assert done.exit_code != 0
    assert done.stderr == "error: bench --stream: spam takes token ids, not benched yet\n"


def test_bench_stream_refuses_a_model_node_cannot_stream_in_one_line(small_models, node_runtime):
    done = CliRunner().invoke(main, ["bench", "--stream", "rnn_stack", "--out", str(small_models)])
    assert done.exit_code == 1
    assert done.stderr.count("\n") == 1
    assert "cannot stream: layer" in done.stderr and "(Bidirectional)" in done.stderr
