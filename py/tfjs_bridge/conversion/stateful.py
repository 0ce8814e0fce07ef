"""Keras `stateful=True` RNNs (tf-keras and Keras 3): what export and verify need.

A stateful RNN carries its state from one call to the next, in a batch fixed
when it was built; `reset_states()` starts every row again from zero. After a
reset, its call on whole sequences is the same model with stateful=False, so
the formats are made from that stateless twin (same weights, batch free), and
a stream (node/lib/layers/stream.js) carries the state across calls as Keras
does. The manifest's "stateful" records the fixed batch and each layer's
state shapes; verify's truth is the stateful model itself (parity/stateful.py)."""

from __future__ import annotations

from .keras_loader import CUSTOM_OBJECTS, RECURRENT_LAYERS


def _layers(model) -> list:
    from .export import all_layers  # export imports this module

    return all_layers(model)


def stateful_layers(model) -> list:
    """The recurrent layers with stateful=True, inside wrappers too, in model
    order; not a Bidirectional's template layer (its two directions run, and
    the template is never built)."""
    every = _layers(model)
    templates = {  # tf-keras keeps the template as .layer; Keras 3 has none
        id(template)
        for layer in every
        if type(layer).__name__ == "Bidirectional"
        and (template := getattr(layer, "layer", None)) is not None
        and template is not layer.forward_layer
    }
    return [
        layer
        for layer in every
        if type(layer).__name__ in RECURRENT_LAYERS
        and getattr(layer, "stateful", False)
        and id(layer) not in templates
    ]


def stateful_record(model) -> dict | None:
    """The manifest's "stateful": {"batch": B, "states": [{"layer", "class",
    "shapes": [[B, units], ...]}]}, one entry per stateful recurrent layer
    ([h] for GRU and SimpleRNN, [h, c] for LSTM); None for a stateless model."""
    found = stateful_layers(model)
    if not found:
        return None
    batch = _fixed_batch(model)
    states = []
    for layer in found:
        states.append({
            "layer": layer.name,
            "class": type(layer).__name__,
            "shapes": _state_shapes(layer, batch),
        })  # fmt: skip
    return {"batch": batch, "states": states}


def _state_shapes(layer, batch: int) -> list[list[int]]:
    """Its states' shapes: the variables' once built (a wrapper's inner layer
    loaded from a file is not), else the batch by the cell's state sizes."""
    built = getattr(layer, "states", None) or []
    if built and all(v is not None for v in built):
        return [[int(d) for d in v.shape] for v in built]
    sizes = layer.cell.state_size
    sizes = list(sizes) if isinstance(sizes, list | tuple) else [sizes]
    return [[batch, *([int(size)] if isinstance(size, int) else [int(d) for d in size])]
            for size in sizes]  # fmt: skip


def _fixed_batch(model) -> int:
    batches = {t.shape[0] for t in model.inputs}
    if len(batches) != 1 or None in batches:
        from ..core.errors import UsageError

        got = ", ".join(str(b) for b in sorted(batches, key=str))
        raise UsageError(f"a stateful model needs one fixed batch size on every input, got {got}")
    return int(batches.pop())


def _edited(config, stateful: bool | None, batch_free: bool, time_free: bool):
    """A model config with every recurrent layer's `stateful` set (None: kept)
    and the inputs' batch and/or time axes freed."""
    if isinstance(config, list):
        return [_edited(v, stateful, batch_free, time_free) for v in config]
    if not isinstance(config, dict):
        return config
    out = {k: _edited(v, stateful, batch_free, time_free) for k, v in config.items()}
    inner = out.get("config")
    if isinstance(inner, dict):
        if out.get("class_name") in RECURRENT_LAYERS and stateful is not None:
            inner["stateful"] = stateful
        for key in ("batch_input_shape", "batch_shape"):  # tf-keras, Keras 3
            shape = inner.get(key)
            if isinstance(shape, list | tuple) and len(shape) >= 2:
                shape = list(shape)
                shape[0] = None if batch_free else shape[0]
                shape[1] = None if time_free else shape[1]
                inner[key] = shape
        if batch_free:
            inner.pop("batch_size", None)
    return out


def _rebuilt(model, config):
    """A model of `model`'s class (tf-keras or Keras 3) from `config`, with its weights."""
    module = type(model).__module__
    if module.startswith("tf_keras"):
        import tf_keras as K

        objects = CUSTOM_OBJECTS
    else:
        import keras as K

        objects = None
    cls = K.Sequential if isinstance(model, K.Sequential) else K.Model
    twin = cls.from_config(config, custom_objects=objects)
    twin.set_weights(model.get_weights())
    return twin


def stateless_twin(model):
    """The same model with stateful=False and a free batch: what every
    format is made from. Its call on whole sequences is the stateful model's
    after reset_states()."""
    return _rebuilt(model, _edited(model.get_config(), False, True, False))


def chunkable(model):
    """The stateful model itself (same batch, same weights) with a free time
    axis, so that it can be called on chunks of any number of steps."""
    return _rebuilt(model, _edited(model.get_config(), None, False, True))


def stepping_twin(model, batch: int = 1):
    """A stateless model's stateful twin: the same layers and weights with
    every recurrent layer stateful=True, the batch fixed to `batch` and the
    time axis free, so that it can be called on one step at a time and
    carries its state between calls (Keras's own stream: bench --stream
    times it beside Node's)."""
    config = _edited(model.get_config(), True, False, True)
    return _rebuilt(model, _batch_fixed(config, batch))


def _batch_fixed(config, batch: int):
    """A model config whose inputs' batch axis is `batch`."""
    if isinstance(config, list):
        return [_batch_fixed(v, batch) for v in config]
    if not isinstance(config, dict):
        return config
    out = {k: _batch_fixed(v, batch) for k, v in config.items()}
    for key in ("batch_input_shape", "batch_shape"):  # tf-keras, Keras 3
        shape = out.get(key)
        if isinstance(shape, list | tuple) and len(shape) >= 2:
            out[key] = [batch, *list(shape)[1:]]
    return out


def reset_states(model) -> None:
    """Every stateful layer back to the zero state (tf-keras and Keras 3)."""
    for layer in stateful_layers(model):
        layer.reset_states()
