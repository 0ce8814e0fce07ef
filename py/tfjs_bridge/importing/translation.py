"""tfjs's meaning, said in Keras's terms: a tfjs modelTopology rewritten as
the tf-keras config that computes what the tfjs model computes.

tfjs writes Keras-style configs but its defaults are not Keras's
(translate_topology spells them out); a layer with no Keras equivalent is
refused by name."""

from __future__ import annotations

import copy

from ..conversion.keras_loader import CELL_LAYERS
from ..core.errors import BridgeError

# Layer classes whose tfjs config means in tf-keras what it means in tfjs
# once _explicit_defaults has spelled out tfjs's defaults (tests/test_import.py).
SAME_MEANING = {
    "InputLayer", "Dense", "Activation", "Dropout", "SpatialDropout1D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "Flatten", "Reshape", "Permute", "RepeatVector",
    "Masking", "Embedding", "Conv1D", "Conv2D", "Conv2DTranspose", "Conv3D",
    "SeparableConv2D", "DepthwiseConv2D", "Cropping2D", "UpSampling2D", "ZeroPadding2D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "BatchNormalization",
    "LayerNormalization", "Add", "Multiply", "Average", "Maximum", "Minimum",
    "Concatenate", "Dot", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "ThresholdedReLU", "SimpleRNN", "GRU", "LSTM", "Bidirectional", "TimeDistributed",
    "Rescaling",
}  # fmt: skip
# Classes refused, with the reason. Any other class is refused too (a custom layer).
NO_KERAS_EQUIVALENT = {
    "RandomWidth": "a tfjs-only random preprocessing layer: Keras 3 has no RandomWidth",
    "RNN": "a generic RNN over tfjs cells: import maps SimpleRNN, GRU and LSTM layers",
    "StackedRNNCells": "stacked tfjs cells: import maps SimpleRNN, GRU and LSTM layers",
    "ConvLSTM2D": "tfjs's ConvLSTM2D cell differs from Keras's (no tested mapping)",
    "Resizing": "tfjs's image resizing kernels are not TensorFlow's (no tested mapping)",
    "CenterCrop": "a tfjs preprocessing layer (no tested mapping)",
    "CategoryEncoding": "a tfjs preprocessing layer (no tested mapping)",
}
NO_KERAS_ACTIVATION = {
    "gelu_new": "tfjs's tanh approximation of GELU; Keras's 'gelu' is the exact one",
}


def _layer_name(layer: dict) -> str:
    return str((layer.get("config") or {}).get("name", "?"))


def _explicit_defaults(cls: str, config: dict) -> dict:
    """What tfjs leaves out or null, spelled as tfjs means it (Keras's
    defaults differ): the reset-before GRU, the LSTM without unit forget
    bias, an Embedding without mask."""
    config = dict(config)
    if cls == "GRU":
        config["reset_after"] = bool(config.get("reset_after") or False)  # tfjs: reset before
    if cls == "LSTM":
        config["unit_forget_bias"] = bool(config.get("unit_forget_bias") or False)
    if cls == "Embedding":
        config["mask_zero"] = bool(config.get("mask_zero") or False)
    if cls in CELL_LAYERS and config.get("implementation") is None:
        config.pop("implementation", None)  # how Keras schedules the matmuls: same numbers
    if cls == "Bidirectional" and config.get("merge_mode", "concat") is None:
        raise BridgeError("merge_mode null (a list of both directions) is not mapped")
    return config


def _check_activations(config: dict, where: str) -> None:
    for key, value in config.items():
        if key.endswith("activation") and value in NO_KERAS_ACTIVATION:
            raise BridgeError(f"{where}: activation {value}: {NO_KERAS_ACTIVATION[value]}")


def _translate_layer(layer: dict, notes: list[str]) -> dict:
    cls = layer.get("class_name")
    where = f"layer {_layer_name(layer)} ({cls})"
    if cls in NO_KERAS_EQUIVALENT:
        raise BridgeError(f"{where} has no Keras equivalent: {NO_KERAS_EQUIVALENT[cls]}")
    if cls not in SAME_MEANING:
        raise BridgeError(
            f"{where} has no Keras equivalent: not a tfjs-layers class tfjs-bridge maps "
            "(a custom layer's code is not in model.json)"
        )
    config = layer.get("config") or {}
    _check_activations(config, where)
    try:
        config = _explicit_defaults(cls, config)
    except BridgeError as err:
        raise BridgeError(f"{where}: {err}") from None
    if cls in ("Bidirectional", "TimeDistributed"):
        inner = _translate_layer(config["layer"], notes)
        config = {**config, "layer": inner}
    return {**layer, "config": config}


def translate_topology(topology: dict) -> tuple[dict, list[str]]:
    """tfjs's modelTopology as tf-keras reads it with tfjs's meaning; raises
    BridgeError naming the first layer that has no Keras equivalent."""
    notes: list[str] = []
    topology = copy.deepcopy(topology)
    model = topology.get("model_config", topology)
    cls = model.get("class_name")
    if cls not in ("Sequential", "Model", "Functional"):
        raise BridgeError(f"modelTopology class {cls!r}: not a Sequential or functional model")
    config = model.get("config")
    layers = config if isinstance(config, list) else (config or {}).get("layers")
    if not isinstance(layers, list):
        raise BridgeError("modelTopology has no layers")
    translated = [_translate_layer(layer, notes) for layer in layers]
    if isinstance(config, list):
        model["config"] = translated
    else:
        config["layers"] = translated
    return topology, notes
