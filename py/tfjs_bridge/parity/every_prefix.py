"""The truth of a last-output model's stream: Keras's output on every prefix
x[:, :t], t = 1..T, "the output if the sequence ended here", which is what
a stream gives after each step (node/lib/layers/stream.js).

Two ways to compute it, the same numbers:
- one run: when the model is a chain of layers that each act on the steps
  so far (forward RNNs returning sequences, Embedding, Masking, per-step
  layers) up to its last recurrent layer, followed by per-step layers only,
  the prefix ending at t ends at step t of that layer's output sequence. So
  a copy of the last recurrent layer with return_sequences=True, same
  weights, gives every prefix's last output at once, and the layers after
  it (built for one step's features) run on each step as on the last.
  A masked step is the same either way: Keras carries the output before it
  into the sequence and into the last output alike (or zeroes both, with
  zero_output_for_mask).
- T runs (any other model): the model, its time axis freed, on each prefix,
  batched over the samples. O(T^2) steps: 28 for MNIST rows is cheap, 200
  tokens is not.
"""

from __future__ import annotations

import importlib

import numpy as np

from .prefixes import free_time_twin
from .truth import keras_call, run_chunked

RECURRENT = {"GRU", "LSTM", "SimpleRNN"}
# What acts on each step alone at inference (stream.js's PER_STEP); an axis
# that is not the features' mixes steps.
PER_STEP = {"Dense", "Activation", "Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise",
            "SpatialDropout1D", "LayerNormalization", "BatchNormalization", "ReLU", "LeakyReLU",
            "PReLU", "ELU", "ThresholdedReLU", "Softmax"}  # fmt: skip
MASKING = {"Embedding", "Masking"}


def outputs_on_every_prefix(model, xs: list[np.ndarray], names: list[str] | None = None):
    """(outputs, how): per model output, Keras's output on x[:, :t] for
    every t, stacked on axis 1 ([N, T, ...]); and how they were computed
    (one run, or one per prefix), in words for the report."""
    steps = xs[0].shape[1]
    split = _last_output_split(model)
    if split is not None:
        body, head, rnn_name = split

        def call(part):
            seq = np.asarray(body(part[0], training=False))  # [n, T, units]
            flat = seq.reshape(-1, *seq.shape[2:])
            ys = np.asarray(head(flat, training=False)) if head is not None else flat
            return [ys.reshape(*seq.shape[:2], *ys.shape[1:])]

        how = (f"one run, its last recurrent layer ({rnn_name}) returning every step, "
               "the layers after it applied to each step")  # fmt: skip
        return _widened(run_chunked(call, xs)), how
    free = model if model.inputs[0].shape[1] is None else free_time_twin(model)
    call = keras_call(free, names)
    runs = [_widened(run_chunked(call, [x[:, :t] for x in xs])) for t in range(1, steps + 1)]
    return [np.stack(ys, 1) for ys in zip(*runs, strict=True)], f"{steps} runs, one per prefix"


def _widened(ys: list[np.ndarray]) -> list[np.ndarray]:
    """float16 outputs as float32, as KerasTruth gives them (Node has no float16)."""
    return [y.astype(np.float32) if y.dtype.kind in "fV" and y.dtype.itemsize < 4 else y
            for y in ys]  # fmt: skip


def _chain(model) -> list | None:
    """The model's layers from input to output when each is fed by the one
    before alone (a shared layer, a branch or several inputs: None)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if type(model).__name__ == "Sequential":  # a chain as built (Keras 3 gives its layers
        return layers  # other tensors than the model's own graph)
    previous = model.inputs[0]
    for layer in layers:
        try:
            given = layer.input
            if isinstance(given, list | tuple):  # Keras 3 hands an RNN its mask beside it
                masks = all("bool" in str(t.dtype) for t in given[1:])
                given = given[0] if given and masks else given
            if given is not previous:
                return None
            previous = layer.output
        except (AttributeError, ValueError, RuntimeError):  # several inbound nodes
            return None
    return layers if previous is model.outputs[0] else None


def _acts_per_step(layer, rank: int) -> bool:
    """A per-step layer whose axis (if it has one) is the features' at this rank."""
    if type(layer).__name__ not in PER_STEP:
        return False
    axis = getattr(layer, "axis", -1)
    return all(a in (-1, rank - 1) for a in np.atleast_1d(axis).tolist())


def _forward(layer) -> bool:
    return not (getattr(layer, "go_backwards", False) or getattr(layer, "return_state", False))


def _last_output_split(model):
    """(body, head, name): body runs the model up to a copy of its last
    recurrent layer returning every step; head (None when there is no
    layer after it) the layers after it on one step's features. None when
    the model is not a chain that splits so (then each prefix is run)."""
    chain = _chain(model)
    if not chain:
        return None
    kinds = [type(layer).__name__ for layer in chain]
    last = max((i for i, k in enumerate(kinds) if k in RECURRENT), default=None)
    if last is None or chain[last].return_sequences or not _forward(chain[last]):
        return None
    rank = len(model.inputs[0].shape) + (1 if kinds[0] == "Embedding" else 0)
    for layer, kind in zip(chain[:last], kinds[:last], strict=True):
        recurrent = kind in RECURRENT and layer.return_sequences and _forward(layer)
        if not (recurrent or kind in MASKING or _acts_per_step(layer, rank)):
            return None
    if not all(_acts_per_step(layer, 2) for layer in chain[last + 1 :]):
        return None
    twin = model if model.inputs[0].shape[1] is None else free_time_twin(model)
    twin_chain = _chain(twin)
    keras = importlib.import_module(type(model).__module__.split(".")[0])  # tf_keras or keras
    rnn = twin_chain[last]
    every_step = type(rnn).from_config({**rnn.get_config(), "return_sequences": True})
    # the layers called again on a new input: a Keras 3 Sequential's layers
    # hold other tensors than its graph's
    x = keras.Input(shape=(None, *twin.inputs[0].shape[2:]), dtype=twin.inputs[0].dtype)
    h = x
    for layer in twin_chain[:last]:
        h = layer(h)
    body = keras.Model(x, every_step(h))
    every_step.set_weights(rnn.get_weights())
    head = None
    if last + 1 < len(twin_chain):
        step_in = keras.Input(shape=tuple(rnn.output.shape[1:]), dtype=rnn.output.dtype)
        y = step_in
        for layer in twin_chain[last + 1 :]:
            y = layer(y)
        head = keras.Model(step_in, y)
    return body, head, rnn.name
