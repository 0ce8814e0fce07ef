"""Weight averaging in Python training, against the average computed by hand
from the weights seen after every step of a real fit()."""

import numpy as np

from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.training.averaging import averaged_weights, averaging_optimizer, warmup_momentum


def _fit_recording(momentum, epochs=2):
    tf = import_tensorflow()
    import tf_keras

    tf_keras.utils.set_random_seed(3)
    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)])
    model.compile(optimizer=averaging_optimizer(tf, tf_keras, "adam", 0.05, momentum), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (40, 3)), rng.uniform(-1, 1, (40, 2))
    flat = lambda: [w.numpy().astype(np.float64) for w in model.trainable_variables]  # noqa: E731
    seen = {"average": flat(), "step": 0, "inside": [], "after": []}

    class Recorder(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["step"] += 1
            rate = warmup_momentum(momentum or 0.0, seen["step"])
            seen["last"] = flat()
            pairs = zip(seen["average"], seen["last"], strict=True)
            seen["average"] = [rate * a + (1 - rate) * w for a, w in pairs]

        def on_epoch_end(self, epoch, logs=None):
            with averaged_weights(self.model):
                seen["inside"].append((flat(), seen["average"]))
            seen["after"].append((flat(), seen["last"]))

    model.fit(x, y, epochs=epochs, batch_size=8, shuffle=False, verbose=0, callbacks=[Recorder()])
    return model, flat(), seen


def test_the_warm_up_momentum_grows_to_the_momentum():
    assert warmup_momentum(0.999, 1) == 2 / 11
    assert warmup_momentum(0.999, 90) == 91 / 100
    assert warmup_momentum(0.999, 100_000) == 0.999


def test_training_ends_with_the_moving_average_of_the_weights():
    model, final, seen = _fit_recording(momentum=0.9)
    assert seen["step"] == 10
    for got, expected in zip(final, seen["average"], strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert max(np.abs(f - last).max() for f, last in zip(final, seen["last"], strict=True)) > 1e-3


def test_per_epoch_evaluation_sees_the_average_then_training_resumes_as_it_was():
    _, _, seen = _fit_recording(momentum=0.9)
    for (inside, average), (after, raw) in zip(seen["inside"], seen["after"], strict=True):
        for got, expected in zip(inside, average, strict=True):
            np.testing.assert_allclose(got, expected, atol=1e-6)
        for got, expected in zip(after, raw, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_without_momentum_the_weights_are_the_last_steps():
    model, final, seen = _fit_recording(momentum=None)
    assert not model.optimizer.use_ema
    assert type(model.optimizer).__module__.endswith("optimizers.adam")  # not the legacy Adam
    for got, last in zip(final, seen["last"], strict=True):
        np.testing.assert_array_equal(got, last)
