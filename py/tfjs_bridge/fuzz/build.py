"""A spec (space.py) -> a Keras model, saved as a user would save it.

tf-keras builds the `.h5` and SavedModel sources, Keras 3 (`keras`) the
`.keras` ones, from the same spec: the layer classes and arguments the
generator uses mean the same in both. Weights come from Keras's own
initialisers under a seed (glorot and orthogonal kernels: the scales a
trained model has), then the weights Keras starts at a constant (biases,
normalisation scales and statistics) are moved to small trained-like values,
so that a bias or a moving variance that a path drops cannot hide behind a
zero or a one."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from ..core.quiet_tf import import_tensorflow

SUFFIX = {"h5": ".h5", "saved_model": "", "keras": ".keras"}


def keras_module(spec: dict):
    """tf_keras for the tf-keras sources, keras (3) for `.keras`."""
    import_tensorflow()
    if spec["source"] == "keras":
        import keras

        return keras
    import tf_keras

    return tf_keras


@contextlib.contextmanager
def dtype_policy(K, policy: str):
    K.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        K.mixed_precision.set_global_policy("float32")


def _layer(K, layer: dict, name: str | None):
    cls = getattr(K.layers, layer["class"])
    config = dict(layer.get("config", {}))
    if name is not None:
        config["name"] = name
    if "inner" in layer:
        return cls(_layer(K, layer["inner"], None), **config)
    return cls(**config)


def _input(K, node: dict):
    shape = tuple(node["shape"])
    kwargs = {"batch_size": node["batch_size"]} if node.get("batch_size") else {}
    return K.Input(shape=shape, dtype=node["dtype"], name=node["name"], **kwargs)


def _graph(K, nodes: list[dict], outputs: list[str], sequential: bool, name: str):
    """Builds nodes: a Sequential for a chain, else a functional model."""
    if sequential:
        first, *rest = nodes
        layers = [_input(K, first)]
        for node in rest:
            layers.append(_layer(K, node, node["name"]))
        return K.Sequential(layers, name=name), None
    tensors: dict[str, object] = {}
    layer_of: dict[str, object] = {}
    inputs = []

    def get(ref: str):
        node_id, _, index = ref.partition(".")
        value = tensors[node_id]
        return value[int(index)] if index else value

    for node in nodes:
        cls = node["class"]
        if cls == "Input":
            tensors[node["id"]] = _input(K, node)
            inputs.append(tensors[node["id"]])
            continue
        if cls == "Nested":
            inner = node["model"]
            layer, _ = _graph(K, inner["nodes"], inner["outputs"], True, node["name"])
        elif cls == "Reuse":
            layer = layer_of[node["of"]]
        else:
            layer = _layer(K, node, node["name"])
        layer_of[node["id"]] = layer
        args = [get(r) for r in node["in"]]
        called = layer if cls != "Reuse" else layer_of[node["of"]]
        kind = cls if cls != "Reuse" else _class_of(nodes, node["of"])
        if kind in ("Attention", "Concatenate", "Add", "Subtract", "Multiply", "Average"):
            out = called(args)
        elif kind == "MultiHeadAttention":
            out = called(args[0], args[1])
        elif "initial_state" in node:
            out = called(args[0], initial_state=[get(r) for r in node["initial_state"]])
        else:
            out = called(args[0])
        tensors[node["id"]] = out
    return inputs, [get(r) for r in outputs]


def _class_of(nodes: list[dict], node_id: str) -> str:
    node = next(n for n in nodes if n["id"] == node_id)
    return node["class"] if node["class"] != "Reuse" else _class_of(nodes, node["of"])


def build_model(spec: dict):
    """The Keras model of a spec (tf-keras or Keras 3, by its source)."""
    K = keras_module(spec)
    K.backend.clear_session()
    K.utils.set_random_seed(spec["seed"] * 1000 + spec["index"])
    name = spec["id"].replace("-", "_")
    with dtype_policy(K, spec["policy"]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec["structure"] == "sequential":
            model, _ = _graph(K, spec["nodes"], spec["outputs"], True, name)
        else:
            inputs, outputs = _graph(K, spec["nodes"], spec["outputs"], False, name)
            if spec.get("dict_io"):
                out_names = [f"out_{i}" for i in range(len(outputs))]
                named = {n["name"]: t for n, t in zip(_inputs(spec), inputs, strict=True)}
                model = K.Model(named, dict(zip(out_names, outputs, strict=True)), name=name)
            else:
                model = K.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=name)
    trained_like(model, np.random.default_rng([spec["seed"], spec["index"]]))
    if spec.get("subclassed"):
        model = _subclassed(K, model, name)
    return model


def _subclassed(K, graph, name: str):
    """A subclassed keras.Model whose call runs `graph` (the same weights):
    what users write when a graph of layers does not fit their model."""

    class FuzzSubclassed(K.Model):
        def __init__(self, inner):
            super().__init__(name=f"{name}_subclassed")
            self.inner = inner

        def call(self, inputs):
            return self.inner(inputs)

    model = FuzzSubclassed(graph)
    model(graph.inputs if len(graph.inputs) > 1 else graph.inputs[0])  # builds it
    return model


def _inputs(spec: dict) -> list[dict]:
    return [n for n in spec["nodes"] if n["class"] == "Input"]


def _leaf(name: str) -> str:
    return name.split("/")[-1].split(":")[0]


def trained_like(model, rng) -> None:
    """Moves the weights Keras starts at a constant to what a trained model
    holds: biases around their initial value (an LSTM's unit forget bias
    stays near one), normalisation scales near one, moving statistics off
    0 and 1. Embeddings get the glorot-uniform scale (Keras starts them at
    ±0.05, which training grows)."""
    for w in model.weights:
        leaf = _leaf(getattr(w, "path", None) or w.name)
        current = np.asarray(w.numpy())
        shape = current.shape
        if leaf in ("bias", "beta", "moving_mean"):
            value = current + rng.normal(0.0, 0.1, shape)
        elif leaf == "gamma":
            value = current * (1.0 + rng.normal(0.0, 0.1, shape))
        elif leaf == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == "embeddings":
            limit = np.sqrt(6.0 / sum(shape))
            value = rng.uniform(-limit, limit, shape)
        else:
            continue
        w.assign(value.astype(current.dtype))


def save_model(model, spec: dict, folder: Path) -> Path:
    """Saves the model where a user would: model.h5, model/ (a SavedModel), model.keras."""
    path = folder / f"{spec['id']}{SUFFIX[spec['source']]}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec["source"] == "h5":
            model.save(path, save_format="h5")
        elif spec["source"] == "saved_model":
            model.save(path, save_format="tf")
        else:
            model.save(path)
    return path


def build_and_save(spec: dict, folder: Path) -> Path:
    return save_model(build_model(spec), spec, folder)
