"""Any tfjs layers model -> a model folder whose truth is that tfjs model:
`tfjs-bridge import PATH OUT_DIR` (docs/import.md).

PATH is a model.json (any name: `downloads://my-model` gives my-model.json)
or the folder holding one, as tfjs's model.save writes it in Node
(model.json + weights.bin) or in a browser (model.json + model.weights.bin),
with any number of shards. It is checked as every loader checks model files
(node/lib/io/modelfiles.js): sizes bounded, JSON well formed, weight paths
inside the folder, declared bytes = shard bytes. The folder gets:

  tfjs_layers/   the tfjs model, byte for byte: the reference (run in Node)
  keras.h5       the same model in tf-keras (tensorflowjs_converter, after
                 the topology says explicitly what tfjs's defaults mean)
  model.keras    the same model in Keras 3 (keras.saving.load_model reads it)
  manifest.json  reference {"kind": "tfjs"}, the I/O contract, sha256 of all

tfjs writes Keras-style configs but its defaults are not Keras's
(translate_topology); a layer with no Keras equivalent is refused by name."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..conversion.keras_loader import CELL_LAYERS, KERAS3, TF_KERAS, load_keras
from ..core.errors import BridgeError, UsageError, first_line
from ..core.quiet_tf import native_stderr_hidden, op_determinism_off
from ..folder import artifacts
from ..folder.formats import DTYPE_BYTES, LAYERS

KERAS3_FILE = "model.keras"
REFERENCE_KIND = "tfjs"  # manifest["reference"]["kind"] of an imported folder
PYTHON_MODELS = {"tf-keras": artifacts.KERAS_H5, "keras3": KERAS3_FILE}  # verify's paths

# Bounds checked before anything is parsed or allocated; node/lib/io/modelfiles.js
# has the same two (tests/test_import.py checks that they agree).
MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024
MAX_WEIGHT_BYTES = 2 * 1024 * 1024 * 1024

# tfjs's hard_sigmoid (and tf-keras's) is clip(0.2x + 0.5, 0, 1); Keras 3's is
# relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1). Scaling the weights that feed it
# by 1.2 makes Keras 3's own activation compute tfjs's: (1.2x) / 6 = 0.2x.
HARD_SIGMOID_FOLD = 1.2
# What `tensorflowjs_converter --input_format tfjs_layers_model --output_format keras` runs.
CONVERTER_FUNCTION = (
    "tensorflowjs.converters.converter.dispatch_tensorflowjs_to_keras_h5_conversion"
)


@dataclass
class TfjsModel:
    json_path: Path
    model_json: dict
    shards: list[str]  # the weight paths as model.json writes them, in order

    @property
    def folder(self) -> Path:
        return self.json_path.parent

    @property
    def topology(self) -> dict:
        topology = self.model_json["modelTopology"]
        return topology.get("model_config", topology)


# -- reading and checking ---------------------------------------------------


def find_model_json(path: Path) -> Path:
    """PATH itself (a .json file), or the model.json in the folder PATH."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_dir():
        candidate = path / LAYERS.entry
        if candidate.is_file():
            return candidate
        found = sorted(p.name for p in path.glob("*.json"))
        hint = f" (it has {', '.join(found)}: give the one to import)" if found else ""
        raise UsageError(f"{path}: no model.json in this folder{hint}")
    return path


def _inside(folder: Path, rel: str, where: Path) -> Path:
    """folder/rel, refused unless it stays inside folder (symlinks resolved)."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel):
        raise BridgeError(f"{where}: weight path {rel!r} points outside the model folder")
    path = folder / rel
    root = folder.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise BridgeError(f"{where}: weight path {rel!r} points outside the model folder {root}")
    return path


def _declared_bytes(spec, where: Path) -> int:
    shape = spec.get("shape") if isinstance(spec, dict) else None
    dtype = spec.get("dtype") if isinstance(spec, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else spec
    if (
        dtype not in DTYPE_BYTES
        or not isinstance(shape, list)
        or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape)
    ):
        raise BridgeError(
            f"{where}: weight {name!r} has an impossible shape {shape} or dtype {dtype}"
        )
    if spec.get("quantization"):
        raise BridgeError(f"{where}: quantized weight {name!r} is not supported")
    count = 1
    for d in shape:
        count *= d
        if count * DTYPE_BYTES[dtype] > MAX_WEIGHT_BYTES:
            raise BridgeError(f"{where}: weight {name!r} declares more than 2 GiB")
    return count * DTYPE_BYTES[dtype]


def read_tfjs_model(path: Path) -> TfjsModel:
    """The model.json at (or in) path, checked with its shards before any
    weight is read: every refusal is one BridgeError naming the file."""
    json_path = find_model_json(path)
    size = json_path.stat().st_size
    if size > MAX_MODEL_JSON_BYTES:
        raise BridgeError(
            f"{json_path}: {size} bytes, more than a model.json may hold "
            f"({MAX_MODEL_JSON_BYTES >> 20} MiB)"
        )
    try:
        model_json = json.loads(json_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BridgeError(f"{json_path}: not a readable model.json ({first_line(exc)})") from None
    if (
        not isinstance(model_json, dict)
        or not isinstance(model_json.get("modelTopology"), dict)
        or not isinstance(model_json.get("weightsManifest"), list)
    ):
        raise BridgeError(
            f"{json_path}: not a tfjs model.json (needs modelTopology and weightsManifest)"
        )
    fmt = model_json.get("format")
    topology = model_json["modelTopology"]
    if fmt == "graph-model" or "node" in topology:
        raise UsageError(
            f"{json_path}: a tfjs graph model (tf.loadGraphModel): import takes layers models"
        )
    if fmt not in (None, "layers-model"):
        raise BridgeError(f"{json_path}: format {fmt!r}, not a tfjs layers model")
    folder = json_path.parent
    shards: list[str] = []
    declared = 0
    for group in model_json["weightsManifest"]:
        if (
            not isinstance(group, dict)
            or not isinstance(group.get("paths"), list)
            or not isinstance(group.get("weights"), list)
        ):
            raise BridgeError(f"{json_path}: a weightsManifest entry lacks paths or weights")
        for rel in group["paths"]:
            _inside(folder, rel, json_path)
            shards.append(rel)
        for spec in group["weights"]:
            declared += _declared_bytes(spec, json_path)
    if declared > MAX_WEIGHT_BYTES:
        raise BridgeError(f"{json_path}: the weights declare more than 2 GiB")
    held = 0
    for rel in shards:
        shard = folder / rel
        if not shard.is_file():
            raise BridgeError(f"{shard}: weight shard missing")
        held += shard.stat().st_size
    if held != declared:
        raise BridgeError(
            f"{json_path}: the weights declare {declared} bytes but the shards hold {held} "
            "(truncated or mismatched)"
        )
    return TfjsModel(json_path, model_json, shards)


# -- tfjs's meaning, said in Keras's terms ------------------------------------

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


# -- Keras 3 -----------------------------------------------------------------

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


# -- the model folder ----------------------------------------------------------


def _default_name(json_path: Path) -> str:
    stem = json_path.stem
    return json_path.parent.resolve().name if stem == "model" else stem


def _refuse_target(source: TfjsModel, out_dir: Path) -> None:
    """OUT_DIR is swapped in whole: it must not hold the model being imported,
    nor be a folder that is not a model folder (it would be replaced)."""
    out = out_dir.resolve()
    src = source.folder.resolve()
    if out == src or out in src.parents:
        raise UsageError(f"{out_dir}: holds the model being imported: choose another OUT_DIR")
    if out_dir.exists() and (
        not out_dir.is_dir()
        or (any(out_dir.iterdir()) and not (out_dir / artifacts.MANIFEST).exists())
    ):
        raise UsageError(f"{out_dir}: exists and is not a model folder: refusing to replace it")


def _converter():
    """tensorflowjs_converter's own module, imported in this process. It
    imports tensorflow_decision_forests, whose welcome banner goes to stderr
    unless this variable is set."""
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    from tensorflowjs.converters import converter

    return converter


def _convert_to_h5(model: TfjsModel, topology: dict, target: Path) -> None:
    """keras.h5 by the function `tensorflowjs_converter --input_format
    tfjs_layers_model --output_format keras` runs (called here rather than
    through the command: that costs a TensorFlow start-up per model), on
    model.json with the translated topology and its shards linked beside it."""
    with tempfile.TemporaryDirectory(prefix="tfjs-bridge-import-") as tmp:
        folder = Path(tmp)
        for rel in model.shards:
            link = folder / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                os.symlink((model.folder / rel).resolve(), link)
        translated = {**model.model_json, "modelTopology": topology}
        (folder / "model.json").write_text(json.dumps(translated))
        failure = None
        # (its v1 Session logs through absl on fd 2; the error, if any, is ours to say)
        with native_stderr_hidden(), warnings.catch_warnings(), op_determinism_off():
            warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": it is what we want
            try:
                _converter().dispatch_tensorflowjs_to_keras_h5_conversion(
                    str(folder / "model.json"), str(target)
                )
            except Exception as exc:
                failure = first_line(exc)
    if failure:
        raise BridgeError(
            f"{model.json_path}: tensorflowjs_converter (tfjs_layers_model -> keras) "
            f"failed: {failure}"
        )


def import_tfjs(path: Path, out_dir: Path, name: str | None = None) -> dict:
    """Write out_dir (atomically) from the tfjs layers model at path; returns the manifest."""
    from ..conversion.export import _classifier
    from ..core.quiet_tf import import_tensorflow
    from ..core.versions import python_versions
    from ..folder.signature import read_signature

    model = read_tfjs_model(path)
    _refuse_target(model, out_dir)
    topology, notes = translate_topology(model.model_json["modelTopology"])
    name = name or _default_name(model.json_path)
    import_tensorflow()

    with artifacts.model_lock(out_dir), artifacts.staged_dir(out_dir) as staging:
        layers_dir = staging / LAYERS.folder
        layers_dir.mkdir()
        shutil.copyfile(model.json_path, layers_dir / LAYERS.entry)  # the truth, as it was
        for rel in model.shards:
            (layers_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model.folder / rel, layers_dir / rel)
        h5 = staging / artifacts.KERAS_H5
        _convert_to_h5(model, topology, h5)
        keras_model = load_keras(h5, TF_KERAS)
        signature = read_signature(keras_model)
        notes += write_keras3(h5, staging / KERAS3_FILE)
        manifest = {
            "model": name,
            "spec": {
                "name": name,
                "input_shape": list(signature.inputs[0].shape),
                "task": "classification" if _classifier(keras_model) else "unknown",
                "data": None,
                "atol": 1e-5,
                "rtol": 1e-5,
            },
            "signature": signature.to_json(),
            "reference": {"kind": REFERENCE_KIND, "file": f"{LAYERS.folder}/{LAYERS.entry}"},
            "python_models": PYTHON_MODELS,
            "source": {
                "path": str(model.json_path.resolve()),
                "kind": "tfjs_layers",
                "generated_by": model.model_json.get("generatedBy"),
                "sha256": artifacts.sha256(model.json_path),
            },
            "converted_by": {
                "tensorflowjs": importlib.metadata.version("tensorflowjs"),
                "function": CONVERTER_FUNCTION,
            },
            "notes": notes,
            "versions": python_versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": artifacts.file_hashes(staging),
        }
        artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
    return manifest


def is_imported(manifest: dict) -> bool:
    return (manifest.get("reference") or {}).get("kind") == REFERENCE_KIND
