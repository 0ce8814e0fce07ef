"""Weight averaging for training: the model that is saved holds an exponential
moving average of its weights over the last steps, not the last step's weights
(Polyak averaging; registry field ``ema_momentum``).

tf-keras's optimizers average from step one with a fixed momentum, so a short
run (a test, ``--limit``) would save weights still close to the initial ones.
As TensorFlow's ``tf.train.ExponentialMovingAverage`` does with
``num_updates``, the momentum here grows with the step count:
``min(momentum, (1 + t) / (10 + t))``. ``node/lib/layers/averaging.js`` applies the
same rule to Node training."""

from __future__ import annotations

import contextlib


def warmup_momentum(momentum: float, step: int) -> float:
    """The averaging momentum after `step` optimizer steps (1 for the first)."""
    return min(momentum, (1 + step) / (10 + step))


def averaging_optimizer(tf, tf_keras, name: str, learning_rate: float, momentum: float | None):
    """The optimizer `name` (as compile("adam") would make it), averaging the
    weights when momentum is set."""
    # By name, tf-keras gives its current optimizer class (from a dict config
    # without is_legacy_optimizer=False, the legacy one, which cannot average).
    base = type(tf_keras.optimizers.get(name))
    if momentum is None:
        return base(learning_rate=learning_rate)

    class WarmupAveraging(base):
        # Replaces tf-keras's fixed-momentum update (called once per step,
        # before `iterations` counts the step), keeping its variables, so
        # finalize_variable_values() and checkpoints work unchanged.
        def _update_model_variables_moving_average(self, var_list):
            step = tf.cast(self.iterations + 1, tf.float32)
            momentum = tf.constant(self.ema_momentum, tf.float32)
            rate = tf.minimum(momentum, (1.0 + step) / (10.0 + step))
            for var in var_list:
                average = self._model_variables_moving_average[self._index_dict[self._var_key(var)]]
                average.assign(rate * average + (1.0 - rate) * var)

    return WarmupAveraging(learning_rate=learning_rate, use_ema=True, ema_momentum=momentum)


@contextlib.contextmanager
def averaged_weights(model):
    """Within: the model holds its optimizer's moving average of the weights,
    which fit() writes into it only when training ends; after: its own weights
    again. Without averaging (or before the first step), nothing changes."""
    optimizer = model.optimizer
    if not getattr(optimizer, "_model_variables_moving_average", None):
        yield
        return
    weights = model.trainable_variables
    saved = [w.numpy() for w in weights]
    optimizer.finalize_variable_values(weights)  # assigns the averages
    try:
        yield
    finally:
        for w, value in zip(weights, saved, strict=True):
            w.assign(value)
