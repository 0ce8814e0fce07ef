"""Keras 3 models, made readable by tfjs-layers, with the same numbers.

tfjs-layers 4.22 reads tf-keras (Keras 2) configs only: a Keras 3 model.json
fails to load (InputLayer `batch_shape`, DTypePolicy objects, new node format,
weight names such as layers/gru/cell/vars/0). And Keras 3's `hard_sigmoid` is
relu6(x + 3) / 6 where tf-keras and tfjs use clip(0.2x + 0.5, 0, 1): converted
as is, it would silently compute something else.

So a Keras 3 model is rebuilt as a tf-keras model from its translated config,
its weights copied over, and its hard_sigmoid renamed to `keras3_hard_sigmoid`,
an activation with Keras 3's formula that node/lib/layers/activations.js defines in
tfjs. verify then checks the result against the Keras 3 model itself."""

from __future__ import annotations

from ..core.errors import BridgeError, first_line
from .keras_loader import CUSTOM_OBJECTS, KERAS3_HARD_SIGMOID, RECURRENT_LAYERS

# Keys that only Keras 3 writes, or that do not change what a loaded model computes
# (initialisers: the weights are copied over anyway).
DROPPED_KEYS = {"module", "registered_name", "shared_object_id", "build_config",
                "compile_config", "optional", "quantization_config"}  # fmt: skip


def _translate(value, key: str | None = None, owner: str | None = None):
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return value["config"]["name"]
        if value.get("class_name") == "__keras_tensor__":
            name, node, index = value["config"]["keras_history"]
            return [name, node, index, {}]
        owner = value.get("class_name", owner)
        if owner == "MultiHeadAttention" and isinstance(value.get("config"), dict):
            value = {**value, "config": _attention_config(value)}
        if owner == "Bidirectional" and isinstance(value.get("config"), dict):
            value = {**value, "config": _plain_bidirectional(value["config"])}
        out = {}
        for k, v in value.items():
            if k in DROPPED_KEYS or k.endswith("_initializer"):
                continue
            if k == "seed" and owner in RECURRENT_LAYERS:
                continue  # tf-keras RNN layers take no seed
            if k == "rms_scaling" and v is False and owner == "LayerNormalization":
                continue  # Keras 3's default, tf-keras's only way (True is refused by tf-keras)
            if k == "inbound_nodes":
                out[k] = [_translate_node(node, owner) for node in v]
                continue
            out["batch_input_shape" if k == "batch_shape" else k] = _translate(v, k, owner)
        return out
    if isinstance(value, list):
        return [_translate(v, key, owner) for v in value]
    if key is not None and key.endswith("activation") and value == "hard_sigmoid":
        return KERAS3_HARD_SIGMOID
    return value


def _attention_config(layer: dict) -> dict:
    """tf-keras's MultiHeadAttention.from_config wants the shapes it was built
    on in its config (it builds its weights from them); Keras 3 keeps them in
    build_config. Keras 3's options at their defaults are dropped; set, they
    are kept, and tf-keras refuses them by name."""
    shapes = (layer.get("build_config") or {}).get("shapes_dict") or {}
    value = shapes.get("value_shape")
    config = {
        k: v
        for k, v in layer["config"].items()
        if (k, v) not in (("use_gate", False), ("sliding_window", None)) and k != "seed"
    }
    return {**config, "query_shape": shapes.get("query_shape"), "value_shape": value,
            "key_shape": shapes.get("key_shape") or value}  # fmt: skip


def _plain_bidirectional(config: dict) -> dict:
    """Keras 3 stores a Bidirectional's inner layer as "forward_NAME" plus a
    mirrored "backward_layer"; tf-keras and tfjs derive both from the inner
    layer, prefixing forward_/backward_ themselves (so weights keep their names)."""
    config = dict(config)
    inner = dict(config["layer"])
    inner["config"] = dict(inner["config"])
    name = inner["config"].get("name", "")
    backward = config.get("backward_layer")
    if backward is not None:
        mirrored = {
            **backward["config"],
            "name": name,
            "go_backwards": not backward["config"].get("go_backwards"),
        }
        if backward.get("class_name") != inner.get("class_name") or mirrored != inner["config"]:
            return config  # a hand-made backward layer: keep it as it is
        config.pop("backward_layer")
    inner["config"]["name"] = name.removeprefix("forward_")
    config["layer"] = inner
    return config


def _translate_node(node: dict, owner: str | None = None) -> list:
    """Keras 3 {"args": [tensors], "kwargs"} -> tf-keras [[layer, node, index, {}], ...].
    An RNN's initial_state follows its input, as tf-keras (and tfjs) write
    it: RNN.__call__ splits that list back into the input and the states."""
    tensors = []

    def collect(v):
        if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
            name, node_index, index = v["config"]["keras_history"]
            tensors.append([name, node_index, index, {}])
        elif isinstance(v, list | tuple):  # get_config() keeps args as tuples
            for item in v:
                collect(item)

    kwargs = node.get("kwargs") or {}
    collect(node.get("args", []))
    if owner == "MultiHeadAttention":
        # tf-keras calls it on the query, with value (and key) as keyword tensors
        named = dict(zip(("query", "value", "key"), tensors, strict=False))
        for key in ("value", "key"):
            tensors = []
            collect(kwargs.get(key, []))
            named.update({key: tensors[0]} if tensors else {})
        query = named.pop("query")
        return [[*query[:3], {k: t[:3] for k, t in named.items()}]]
    sequences = len(tensors)
    collect(kwargs.get("initial_state") or [])
    if len(tensors) > sequences and kwargs.get("mask") is None:
        # Keras 3 fills in `mask` only for a call on one tensor argument: an
        # RNN given initial_state= runs unmasked. mask=None says so to tf-keras.
        return [[*t[:3], {"mask": None}] for t in tensors]
    return tensors


def _without_mask_ops(config: dict) -> list:
    """Keras 3 computes masks in the graph: an Embedding(mask_zero=True)'s as
    a NotEqual op layer, and what layers that pass a mask on (Attention,
    Concatenate) make of it as more op layers (ConvertToTensor, ExpandDims,
    LogicalOr, a Concatenate of masks, Any...), given to the next layer as
    mask=... . tf-keras (and tfjs) carry masks along implicitly. Node kwargs
    are not translated (_translate_node), so those layers no longer lead to
    an output: drop every layer that does not (Keras 3 keeps no other; none
    has weights). verify compares against the Keras 3 model itself, so a mask
    computed otherwise would fail, not pass silently."""
    inbound = {layer["name"]: layer.get("inbound_nodes", []) for layer in config["layers"]}
    todo = [ref[0] for ref in config.get("output_layers") or []]
    needed = set()
    while todo:
        name = todo.pop()
        if name in needed or name not in inbound:
            continue
        needed.add(name)
        for node in inbound[name]:
            for ref in node:
                todo.append(ref[0])
                # tensors passed by keyword (a MultiHeadAttention's value, key)
                todo += [t[0] for t in (ref[3] if len(ref) > 3 else {}).values() if t]
    return [
        layer
        for layer in config["layers"]
        if layer["name"] in needed or layer.get("class_name") == "InputLayer"
    ]


def _nested_io(refs):
    """input_layers/output_layers as tf-keras and tfjs read them, a list of
    [name, 0, 0]: Keras 3 writes one flat, and a model built on dicts
    ({"tokens": ..., "numeric": ...}) as a dict, which becomes the list in
    sorted key order, the order in which Keras 3 flattens it (model.inputs,
    output_names); each keeps its layer's name."""
    if isinstance(refs, dict):
        return [refs[key] for key in sorted(refs)]
    return [refs] if refs and isinstance(refs[0], str) else refs


NESTED_MODELS = ("Functional", "Model", "Sequential")


def _starts_with_input(layer: dict) -> bool:
    """tf-keras's _should_skip_first_node: a nested model built on an Input
    has a node of its own (its inputs to its outputs) before any call."""
    inner = layer.get("config", {}).get("layers") or [{}]
    return layer["class_name"] != "Sequential" or inner[0].get("class_name") == "InputLayer"


def _as_tf_keras_functional(config: dict) -> None:
    """A translated functional config in tf-keras's terms, in place, nested
    functional models within too. Keras 3 numbers a nested model's calls from
    0; tf-keras from 1, after that node of its own. Left at 0, tf-keras's
    reconstruct_from_config waits for a node that never comes, forever."""
    config["input_layers"] = _nested_io(config.get("input_layers"))
    config["output_layers"] = _nested_io(config.get("output_layers"))
    config["layers"] = _without_mask_ops(config)
    nested = set()
    for layer in config["layers"]:
        if layer.get("class_name") in NESTED_MODELS:
            if layer["class_name"] != "Sequential":
                _as_tf_keras_functional(layer["config"])
            if _starts_with_input(layer):
                nested.add(layer["name"])
    refs = [ref for layer in config["layers"] for node in layer.get("inbound_nodes", [])
            for ref in node]  # fmt: skip
    for ref in refs + config["output_layers"]:
        if ref[0] in nested:
            ref[1] += 1


def output_names(model) -> list[str]:
    """The names the tf-keras twin gives the outputs (and so the SavedModel's
    keys, and tfjs's). Keras 3 Sequential has no output_names: its output is
    its last layer's. Keras 3 names each output by its layer, so a layer with
    several outputs (an LSTM's return_state) repeats its name; tf-keras (and
    tfjs) number the repeats: lstm, lstm_1, lstm_2."""
    names = list(getattr(model, "output_names", None) or [model.layers[-1].name])
    unique, counts = [], {}
    for name in names:
        proposal = name
        while proposal in unique:
            counts[name] = counts.get(name, 1)
            proposal = f"{name}_{counts[name]}"
            counts[name] += 1
        unique.append(proposal)
    return unique


def to_tf_keras(model):
    """A tf-keras model computing what the Keras 3 `model` computes."""
    import keras
    import tf_keras

    config = _translate(model.get_config())
    is_sequential = isinstance(model, keras.Sequential)
    if not is_sequential:
        _as_tf_keras_functional(config)
    cls = tf_keras.Sequential if is_sequential else tf_keras.Model
    try:
        # In scope, not only passed: Bidirectional rebuilds its backward layer
        # from the forward one's config, where keras3_hard_sigmoid is a function.
        with tf_keras.utils.custom_object_scope(CUSTOM_OBJECTS):
            twin = cls.from_config(config, custom_objects=CUSTOM_OBJECTS)
        twin.set_weights(model.get_weights())
    except Exception as exc:
        raise BridgeError(
            "this Keras 3 model has no tf-keras equivalent that tfjs can load: "
            f"{_culprit(config)}{first_line(exc)}"
        ) from None
    return twin


def _culprit(config: dict) -> str:
    """'layer CLASS NAME: ' for the first layer tf-keras cannot build alone
    (its own error often names only an argument), or ''."""
    from tf_keras.layers import deserialize

    for layer in config.get("layers", []):
        try:
            deserialize({k: v for k, v in layer.items() if k != "inbound_nodes"},
                        custom_objects=CUSTOM_OBJECTS)  # fmt: skip
        except Exception:  # noqa: BLE001 - any failure names this layer
            return f"layer {layer.get('class_name')} {layer.get('name')}: "
    return ""
