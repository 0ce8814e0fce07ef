"""Any user's Keras model -> a model folder like the registry's, ready for
every Node path: `tfjs-bridge export PATH OUT` (and `verify --keras-model`).

  .h5 / .hdf5   a tf-keras model
  .keras        a Keras 3 model: rebuilt in tf-keras by keras3.py
  a folder      a SavedModel: a tf-keras one is treated as Keras; any other is
                served as is (graph and saved_model formats only)

The folder holds keras.h5 (for the layers converter), saved_model/ (an
unrolled twin with the same weights, for the graph converter and
tf.node.loadSavedModel), tfjs_layers/, tfjs_graph/ and manifest.json, whose
"reference" says which Python model is the truth for verify."""

from __future__ import annotations

import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import BridgeError, UsageError
from ..core.quiet_tf import import_tensorflow
from ..core.versions import python_versions
from ..folder import artifacts
from ..folder.formats import SAVED_MODEL, SAVED_MODEL_XLA
from ..folder.signature import InputSpec, Signature, float_input, read_signature
from . import keras3
from .convert import convert_in_place
from .keras_loader import CUSTOM_OBJECTS, KERAS3, TF_KERAS, UNROLLABLE_LAYERS, load_keras


def _with_unroll(config):
    if isinstance(config, dict):
        out = {k: _with_unroll(v) for k, v in config.items()}
        if out.get("class_name") in UNROLLABLE_LAYERS and isinstance(out.get("config"), dict):
            out["config"]["unroll"] = True
        return out
    if isinstance(config, list):
        return [_with_unroll(v) for v in config]
    return config


def unrolled_twin(model):
    """The same tf-keras model with every RNN unrolled (no While loop in its
    graph: the tfjs graph executor runs loops only slowly through
    executeAsync, and tf-keras 2.19's not at all). None if a time axis is not fixed."""
    import tf_keras

    if any(len(shape) >= 2 and shape[1] is None for shape in _input_shapes(model)):
        return None
    masked = any(
        type(layer).__name__ == "Masking" or getattr(layer, "mask_zero", False)
        for layer in model.submodules
    )
    if masked and any(
        getattr(layer, "zero_output_for_mask", False) for layer in _rnn_layers(model)
    ):
        # Masked steps of a return_sequences Bidirectional give 0 in the loop
        # but the previous output once unrolled (tf-keras's unrolled rnn()
        # ignores zero_output_for_mask): keep the loop, which tfjs-layers matches.
        return None
    cls = tf_keras.Sequential if isinstance(model, tf_keras.Sequential) else tf_keras.Model
    twin = cls.from_config(_with_unroll(model.get_config()), custom_objects=CUSTOM_OBJECTS)
    twin.set_weights(model.get_weights())
    return twin


def _rnn_layers(model) -> list:
    """Every recurrent layer, inside wrappers (Bidirectional) too."""
    return [layer for layer in model.submodules if type(layer).__name__ in UNROLLABLE_LAYERS]


def _input_shapes(model) -> list[tuple]:
    return [tuple(t.shape) for t in model.inputs]


def save_h5(model, path: Path) -> None:
    with warnings.catch_warnings():
        # HDF5 is "legacy" to tf-keras, but it is what the converter's keras input reads.
        warnings.filterwarnings("ignore", message="You are saving your model as an HDF5")
        model.save(path, include_optimizer=False, save_format="h5")


def _unfuse_layer_norms(model) -> None:
    """tf-keras runs LayerNormalization as a training-mode FusedBatchNormV3
    over a reshaped input; the tfjs graph executor runs that op as inference
    batch norm with empty statistics: wrong on the pure-JS and WASM backends,
    an error on tfjs-node. The plain formula (moments, then the affine
    normalisation) computes the same in ops every tfjs backend has."""
    for layer in model.submodules:
        if type(layer).__name__ == "LayerNormalization":
            layer._fused = False


def serving_keys(signature: Signature) -> list[str]:
    """The serving signature's input keys: "input" for a one-input model (as
    the registry's have always been), else the Keras input names."""
    return ["input"] if len(signature.inputs) == 1 else signature.names


def save_serving(model, model_dir: Path) -> bool:
    """model_dir/saved_model/ and saved_model_xla/: SavedModels serving `model`
    (an unrolled twin when possible, built once for both) under
    serving_default, inputs keyed by serving_keys, outputs by Keras's output
    names (one output too): names Node reads from the signature. The XLA
    one compiles the serving function (jit_compile), which
    tf.node.loadSavedModel runs too, several times faster for small batches.
    Returns whether it is unrolled."""
    tf = import_tensorflow()
    signature = read_signature(model)
    twin = unrolled_twin(model)
    served = twin if twin is not None else model
    _unfuse_layer_norms(served)
    names = list(model.output_names)

    def outputs(*xs):
        ys = served(xs[0] if len(xs) == 1 else list(xs), training=False)
        ys = ys if isinstance(ys, list | tuple) else [ys]
        return dict(zip(names, ys, strict=True))

    spec = [
        tf.TensorSpec((None, *i.shape), i.dtype, name=key)
        for i, key in zip(signature.inputs, serving_keys(signature), strict=True)
    ]
    for folder, xla in ((SAVED_MODEL.folder, None), (SAVED_MODEL_XLA.folder, True)):
        serve = tf.function(outputs, input_signature=spec, jit_compile=xla)
        tf.saved_model.save(served, str(model_dir / folder), signatures={"serving_default": serve})
    return twin is not None


def _classifier(model) -> bool:
    """Its first output comes from a softmax: verify then also compares argmax."""
    first = model.get_layer(model.output_names[0])
    activation = getattr(first, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def _load_source(source: Path):
    """(tf-keras model or None, reference kind)."""
    import_tensorflow()
    import tf_keras

    if source.is_dir():
        if not (source / "saved_model.pb").exists():
            raise UsageError(f"{source}: a folder, but not a SavedModel (no saved_model.pb)")
        try:
            model = load_keras(source, TF_KERAS)
        except BridgeError:
            model = None
        # Anything else (a Keras 3 export, a tf.Module) is served by its signature.
        return (model, "tf_keras") if isinstance(model, tf_keras.Model) else (None, "saved_model")
    suffix = source.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return load_keras(source, TF_KERAS), TF_KERAS
    if suffix == ".keras":
        return keras3.to_tf_keras(load_keras(source, KERAS3)), KERAS3
    raise UsageError(f"{source}: expected a .h5, a .keras file or a SavedModel folder")


def export_model(source: Path, out_dir: Path, name: str | None = None) -> dict:
    """Write out_dir (atomically) from a user's model; returns the manifest."""
    if not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    model, kind = _load_source(source)
    name = name or out_dir.name
    notes = []
    with artifacts.model_lock(out_dir), artifacts.staged_dir(out_dir) as staging:
        if model is not None:
            signature = read_signature(model)
            save_h5(model, staging / artifacts.KERAS_H5)
            if not save_serving(model, staging):
                notes.append("time axis not fixed: the SavedModel keeps its While loop")
            classifier = _classifier(model)
            formats = ("layers", "graph")
        else:
            shutil.copytree(source, staging / SAVED_MODEL.folder)
            signature = _saved_model_signature(staging / SAVED_MODEL.folder)
            if any(i.kind == "tokens" for i in signature.inputs):
                notes.append(
                    "integer inputs of a SavedModel: their valid ids are unknown; "
                    "give them with --input-range NAME=LO:HI"
                )
            classifier = False
            formats = ("graph",)
        input_shape = list(signature.inputs[0].shape)
        reference = {
            "tf_keras": {"kind": "tf_keras", "file": artifacts.KERAS_H5},
            "keras3": {"kind": "keras3", "file": "source.keras"},
            "saved_model": {"kind": "saved_model", "file": SAVED_MODEL.folder},
        }[kind]
        if kind == "keras3":
            shutil.copyfile(source, staging / "source.keras")
        manifest = {
            "model": name,
            "spec": {
                "name": name,
                "input_shape": input_shape,
                "task": "classification" if classifier else "unknown",
                "data": None,
                "atol": 1e-5,
                "rtol": 1e-5,
            },
            "signature": signature.to_json(),
            "reference": reference,
            "source": {"path": str(source.resolve()), "kind": kind},
            "notes": notes,
            "versions": python_versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        manifest["files"] = artifacts.file_hashes(staging)  # what the converters may read
        artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
        manifest = convert_in_place(staging, formats)
        hashes = artifacts.file_hashes(staging)
        manifest["files"] = {k: v for k, v in hashes.items() if k != artifacts.MANIFEST}
        artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
    return manifest


def _saved_model_signature(folder: Path) -> Signature:
    """The I/O contract of a SavedModel that is not Keras: its serving
    signature's inputs (sorted by key, as Node sorts them) and outputs."""
    tf = import_tensorflow()
    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
    inputs = []
    for key, spec in sorted(serve.structured_input_signature[1].items()):
        shape = tuple(spec.shape[1:])
        if spec.dtype.is_integer:
            inputs.append(InputSpec(key, "int32", shape, "tokens", 0, 2))
        else:
            inputs.append(float_input(key, shape))
    return Signature(tuple(inputs), tuple(sorted(serve.structured_outputs)))
