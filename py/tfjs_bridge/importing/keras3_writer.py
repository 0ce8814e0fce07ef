"""The imported model in Keras 3: keras.h5 (tf-keras) rewritten as a .keras
file that keras.saving.load_model reads alone and that computes what the
tfjs model computes.

Keras 3 reads tf-keras's legacy config with a few spellings changed
(_keras3_config: keys it dropped, an initializer alias, a Bidirectional's
backward twin) and refuses what it cannot say (ThresholdedReLU). Its
hard_sigmoid is not tfjs's: the weights feeding one are scaled so that Keras
3's activation computes tfjs's (HARD_SIGMOID_FOLD)."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

from ..conversion.keras_loader import CELL_LAYERS, KERAS3, load_keras
from ..core.errors import BridgeError

KERAS3_FILE = "model.keras"  # its name in an imported model folder

# tfjs's hard_sigmoid (and tf-keras's) is clip(0.2x + 0.5, 0, 1); Keras 3's is
# relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1). Scaling the weights that feed it
# by 1.2 makes Keras 3's own activation compute tfjs's: (1.2x) / 6 = 0.2x.
HARD_SIGMOID_FOLD = 1.2

# tf-keras config keys Keras 3 does not take, and the only value each may have
# (the one Keras 3 always behaves as); any other value is refused.
KERAS3_DROPPED = {"time_major": False, "groups": 1}
KERAS3_DISTRIBUTIONS = {"normal": "truncated_normal"}  # tf-keras's alias, Keras 3's name
# Keys tf-keras writes for a SeparableConv2D but never uses (its kernels are
# the depthwise and pointwise ones), which Keras 3 refuses.
KERAS3_UNUSED = {
    "SeparableConv2D": {"kernel_initializer", "kernel_regularizer", "kernel_constraint"}
}


def _keras3_bidirectional(config: dict) -> dict:
    """Keras 3 builds a Bidirectional's backward layer with go_backwards=True
    whatever the inner layer says (tf-keras and tfjs flip it), so a wrapped
    layer that itself goes backwards needs its backward twin spelled out."""
    inner = config["layer"]
    if not inner["config"].get("go_backwards") or "backward_layer" in config:
        return config
    name = inner["config"]["name"]
    backward = copy.deepcopy(inner)
    backward["config"].update(go_backwards=False, name=f"backward_{name}")
    return {**config, "backward_layer": backward}


def _keras3_config(value, key: str | None = None, where: str = "model"):
    """A tf-keras model config as Keras 3's legacy loader reads it."""
    if isinstance(value, dict):
        if "class_name" in value and isinstance(value.get("config"), dict):
            name = value["config"].get("name")
            where = f"layer {name} ({value['class_name']})" if name else where
            if value["class_name"] == "ThresholdedReLU":
                raise BridgeError(
                    f"{where}: Keras 3 removed ThresholdedReLU, and ReLU(threshold) "
                    "differs from it at x == theta"
                )
            if value["class_name"] == "Bidirectional":
                value = {**value, "config": _keras3_bidirectional(value["config"])}
        unused = KERAS3_UNUSED.get(value.get("class_name"), set())
        out = {}
        for k, v in value.items():
            if k == "config" and unused and isinstance(v, dict):
                v = {ck: cv for ck, cv in v.items() if ck not in unused}
            if k in KERAS3_DROPPED:
                if v != KERAS3_DROPPED[k]:
                    raise BridgeError(f"{where}: {k}={v} has no Keras 3 equivalent")
                continue
            if k == "distribution" and v in KERAS3_DISTRIBUTIONS:
                v = KERAS3_DISTRIBUTIONS[v]
            out[k] = _keras3_config(v, k, where)
        return out
    if isinstance(value, list):
        return [_keras3_config(v, key, where) for v in value]
    return value


def _gate_columns(layer_cls: str, units: int, which: str) -> list[slice]:
    """The kernel columns feeding recurrent_activation or activation (Keras's gate order)."""
    u = units
    if layer_cls == "GRU":  # z, r, h
        return [slice(0, 2 * u)] if which == "recurrent_activation" else [slice(2 * u, 3 * u)]
    if layer_cls == "LSTM":  # i, f, c, o
        return [slice(0, 2 * u), slice(3 * u, 4 * u)] if which == "recurrent_activation" else []
    return [slice(None)]  # SimpleRNN


def _fold(weight, columns: list[slice]) -> None:
    import numpy as np

    value = np.array(weight.numpy())
    for cols in columns:
        value[..., cols] *= np.float32(HARD_SIGMOID_FOLD)
    weight.assign(value)


def _fold_layer(layer, where: str) -> bool:
    """Make `layer` (Keras 3) compute tfjs's hard_sigmoid wherever it uses
    one; whether it did."""
    import keras

    cls = type(layer).__name__
    if cls == "Bidirectional":
        return any(
            [_fold_layer(layer.forward_layer, where), _fold_layer(layer.backward_layer, where)]
        )
    if cls == "TimeDistributed":
        return _fold_layer(layer.layer, where)
    config = layer.get_config()
    uses = [k for k in ("activation", "recurrent_activation") if config.get(k) == "hard_sigmoid"]
    if not uses:
        return False
    if cls in CELL_LAYERS:
        cell = layer.cell
        for which in uses:
            columns = _gate_columns(cls, layer.units, which)
            if not columns:
                raise BridgeError(
                    f"{where}: an LSTM whose activation is hard_sigmoid applies it to its "
                    "cell state too: no Keras 3 weights make that tfjs's hard_sigmoid"
                )
            for weight in (cell.kernel, cell.recurrent_kernel, cell.bias):
                if weight is not None:
                    _fold(weight, columns)
        return True
    kernels = [k for k in ("kernel", "depthwise_kernel", "pointwise_kernel") if hasattr(layer, k)]
    if cls == "SeparableConv2D":
        kernels = ["pointwise_kernel"]
    if not kernels or isinstance(layer, keras.layers.Activation):
        raise BridgeError(
            f"{where}: hard_sigmoid on no weights: Keras 3's hard_sigmoid is relu6(x + 3) / 6, "
            "tfjs's clip(0.2x + 0.5, 0, 1), and no Keras 3 activation computes the latter"
        )
    for name in [*kernels, "bias"]:
        weight = getattr(layer, name, None)
        if weight is not None:
            _fold(weight, [slice(None)])
    return True


def write_keras3(h5: Path, target: Path) -> list[str]:
    """keras.h5 (tf-keras) -> target (.keras) that Keras 3 loads with
    keras.saving.load_model alone and that computes the same; returns notes."""
    import h5py

    with tempfile.TemporaryDirectory(prefix="tfjs-bridge-keras3-") as tmp:
        legacy = Path(tmp) / "model.h5"
        shutil.copyfile(h5, legacy)
        with h5py.File(legacy, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            f.attrs["model_config"] = json.dumps(_keras3_config(config))
        model = load_keras(legacy, KERAS3)
    folded = [
        layer.name
        for layer in model.layers
        if _fold_layer(layer, f"layer {layer.name} ({type(layer).__name__})")
    ]
    model.save(target)
    if not folded:
        return []
    return [
        f"{target.name}: the weights feeding hard_sigmoid in {', '.join(folded)} are scaled by "
        f"{HARD_SIGMOID_FOLD} (Keras 3's hard_sigmoid is relu6(x + 3) / 6, tfjs's "
        "clip(0.2x + 0.5, 0, 1))"
    ]
