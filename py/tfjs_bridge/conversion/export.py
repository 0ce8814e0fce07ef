"""Any user's Keras model -> a model folder like the registry's, ready for
every Node path: `tfjs-bridge export PATH OUT` (and `verify --keras-model`).

  .h5 / .hdf5   a tf-keras model
  .keras        a Keras 3 model: rebuilt in tf-keras by keras3.py
  a folder      a SavedModel: a tf-keras one is treated as Keras; any other
                (a subclassed model too) is served as is (graph and
                saved_model formats only)

The folder holds keras.h5 (for the layers converter), saved_model/ (an
unrolled twin with the same weights, for the graph converter and
tf.node.loadSavedModel), tfjs_layers/, tfjs_graph/ and manifest.json, whose
"reference" says which Python model is the truth for verify.

A format that cannot be made is left out, whole, and the manifest's
"unsupported" says why in one line (format -> reason): the converter's error
for that format, or a Lambda layer for the layers format (tfjs-layers cannot
run Python code). verify gives its paths the verdict `unsupported` and runs
the others. A Keras 3 model with no tf-keras twin has no layers format; its
SavedModels serve the Keras 3 model itself. A model with stateful RNNs
(stateful.py) is exported as its stateless twin; the manifest's "stateful"
records its batch and state shapes, and its truth is the stateful model
(stateful.h5 for tf-keras, source.keras for Keras 3).
Lambda layers are loaded only with trust_lambda (their code comes from the
file)."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import BridgeError, UsageError, first_line
from ..core.quiet_tf import import_tensorflow, native_stderr_hidden
from ..core.versions import python_versions
from ..folder import artifacts
from ..folder.formats import FORMATS, SAVED_MODEL, SAVED_MODEL_XLA
from ..folder.signature import InputSpec, Signature, float_input, read_signature
from . import keras3
from .convert import ConverterError, convert_in_place
from .converter_process import shared_converter
from .keras_loader import (
    CUSTOM_OBJECTS,
    KERAS3,
    TF_KERAS,
    UNROLLABLE_LAYERS,
    lambda_layers,
    load_keras,
)
from .stateful import stateful_record, stateless_twin


def _with_unroll(config):
    if isinstance(config, dict):
        out = {k: _with_unroll(v) for k, v in config.items()}
        if out.get("class_name") in UNROLLABLE_LAYERS and isinstance(out.get("config"), dict):
            out["config"]["unroll"] = True
        return out
    if isinstance(config, list):
        return [_with_unroll(v) for v in config]
    return config


def all_layers(model) -> list:
    """Every layer of a Keras model, inside nested models and wrappers
    (Bidirectional, TimeDistributed) too, each once. Not `model.submodules`:
    that walks every attribute, and the mask cache of a layer with dropout
    (keyed by the graphs it was traced in) makes it raise."""
    found, seen = [], set()
    todo = list(getattr(model, "layers", []))
    while todo:
        layer = todo.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append(layer)
        todo += list(getattr(layer, "layers", None) or [])  # a nested model
        todo += [
            inner
            for inner in (
                getattr(layer, a, None) for a in ("layer", "forward_layer", "backward_layer")
            )
            if inner is not None
        ]
    return found


def unrolled_twin(model, trust_lambda: bool = False):
    """The same tf-keras model with every RNN unrolled (no While loop in its
    graph: the tfjs graph executor runs loops only slowly through
    executeAsync, and tf-keras 2.19's not at all). None if a time axis is not fixed."""
    import tf_keras
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    if any(len(shape) >= 2 and shape[1] is None for shape in _input_shapes(model)):
        return None
    masked = any(
        type(layer).__name__ == "Masking" or getattr(layer, "mask_zero", False)
        for layer in all_layers(model)
    )
    if masked and any(
        getattr(layer, "zero_output_for_mask", False) for layer in _rnn_layers(model)
    ):
        # Masked steps of a return_sequences Bidirectional give 0 in the loop
        # but the previous output once unrolled (tf-keras's unrolled rnn()
        # ignores zero_output_for_mask): keep the loop, which tfjs-layers matches.
        return None
    cls = tf_keras.Sequential if isinstance(model, tf_keras.Sequential) else tf_keras.Model
    # A Lambda layer's code is rebuilt from the config: only when the user trusts it.
    with SafeModeScope(not trust_lambda):
        twin = cls.from_config(_with_unroll(model.get_config()), custom_objects=CUSTOM_OBJECTS)
    twin.set_weights(model.get_weights())
    return twin


def _rnn_layers(model) -> list:
    """Every recurrent layer, inside wrappers (Bidirectional) too."""
    return [layer for layer in all_layers(model) if type(layer).__name__ in UNROLLABLE_LAYERS]


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
    for layer in all_layers(model):
        if type(layer).__name__ == "LayerNormalization":
            layer._fused = False


def serving_keys(signature: Signature) -> list[str]:
    """The serving signature's input keys: "input" for a one-input model (as
    the registry's have always been), else the Keras input names."""
    return ["input"] if len(signature.inputs) == 1 else signature.names


def save_serving(model, model_dir: Path, trust_lambda: bool = False) -> bool:
    """model_dir/saved_model/ and saved_model_xla/: SavedModels serving `model`
    (an unrolled twin when possible, built once for both) under
    serving_default, inputs keyed by serving_keys, outputs by Keras's output
    names (one output too): names Node reads from the signature. The XLA
    one compiles the serving function (jit_compile), which
    tf.node.loadSavedModel runs too, several times faster for small batches.
    Returns whether it is unrolled."""
    tf = import_tensorflow()
    signature = read_signature(model)
    twin = unrolled_twin(model, trust_lambda)
    served = twin if twin is not None else model
    _unfuse_layer_norms(served)
    names = list(model.output_names)

    def outputs(*xs):
        ys = served(xs[0] if len(xs) == 1 else list(xs), training=False)
        ys = ys if isinstance(ys, list | tuple) else [ys]
        # tfjs has no float16 tensors: a mixed-precision head is served widened (exactly)
        ys = [tf.cast(y, tf.float32) if y.dtype in (tf.float16, tf.bfloat16) else y for y in ys]
        return dict(zip(names, ys, strict=True))

    spec = [
        tf.TensorSpec((None, *i.shape), i.dtype, name=key)
        for i, key in zip(signature.inputs, serving_keys(signature), strict=True)
    ]
    # Saved through a module holding the weights, not the Keras model: Keras
    # traces every layer's call for its own metadata, which no path reads
    # (48 s instead of 9 s for gru's 28 unrolled steps). A model with other
    # resources (a lookup table) is saved whole.
    holder = tf.Module()
    holder.weights = list(served.variables)
    for folder, xla in ((SAVED_MODEL.folder, None), (SAVED_MODEL_XLA.folder, True)):
        serve = tf.function(outputs, input_signature=spec, jit_compile=xla)
        signatures = {"serving_default": serve}
        try:
            tf.saved_model.save(holder, str(model_dir / folder), signatures=signatures)
        except (AssertionError, ValueError):  # an untracked resource the model holds
            shutil.rmtree(model_dir / folder, ignore_errors=True)
            holder = served
            tf.saved_model.save(served, str(model_dir / folder), signatures=signatures)
    return twin is not None


def is_classifier(model) -> bool:
    """Its first output comes from a softmax: verify then also compares argmax."""
    first = model.get_layer(model.output_names[0])
    activation = getattr(first, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def _load_source(source: Path, trust_lambda: bool = False):
    """(Keras model or None, reference kind): a tf-keras model, a Keras 3 one
    (.keras, translated by the caller), or None for a SavedModel served as is."""
    import_tensorflow()
    import tf_keras

    if source.is_dir():
        if not (source / "saved_model.pb").exists():
            raise UsageError(f"{source}: a folder, but not a SavedModel (no saved_model.pb)")
        try:
            model = load_keras(source, TF_KERAS, trust_lambda=trust_lambda)
        except BridgeError:
            model = None
        # Anything else (a Keras 3 export, a tf.Module, a Keras model with
        # Lambda layers not trusted, a subclassed model: no graph of layers
        # to rebuild or convert) is served by its signature: its graph, no
        # Python code from the file.
        if isinstance(model, tf_keras.Model) and getattr(model, "_is_graph_network", False):
            return model, "tf_keras"
        return None, "saved_model"
    suffix = source.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return load_keras(source, TF_KERAS, trust_lambda=trust_lambda), TF_KERAS
    if suffix == ".keras":
        return load_keras(source, KERAS3, trust_lambda=trust_lambda), KERAS3
    raise UsageError(f"{source}: expected a .h5, a .keras file or a SavedModel folder")


def _subclassed_name(source: Path) -> str | None:
    """The class of a SavedModel's subclassed Keras model (from the metadata
    Keras saves beside it, not by running its code), or None."""
    metadata = source / "keras_metadata.pb"
    if not metadata.exists():
        return None
    import json

    from tf_keras.protobuf import saved_metadata_pb2

    proto = saved_metadata_pb2.SavedMetadata()
    proto.ParseFromString(metadata.read_bytes())
    for node in proto.nodes:
        if node.node_path == "root":
            found = json.loads(node.metadata or "{}")
            return None if found.get("is_graph_network", True) else found.get("class_name", "Model")
    return None


LAMBDA_UNSUPPORTED = "tfjs-layers cannot run Python code"
STATEFUL_H5 = "stateful.h5"  # a stateful tf-keras model itself: the truth beside its twin
# What a model no format can hold leaves unsupported: every path verify runs.
ALL_FORMATS = ("layers", "graph", SAVED_MODEL.name, SAVED_MODEL_XLA.name)


def _stateless(model) -> tuple[object, dict | None, str | None]:
    """(the model to export, its "stateful" record, why no format can hold it):
    a stateful model becomes its stateless twin (stateful.py)."""
    record = stateful_record(model) if model is not None else None
    if record is None:
        return model, None, None
    try:
        return stateless_twin(model), record, None
    except Exception as err:  # a config Keras cannot rebuild: every path says why, once
        names = ", ".join(f"{r['class']} {r['layer']}" for r in record["states"])
        return model, record, f"stateful {names}: no stateless twin: {first_line(err)}"


def _serve_keras3(model, model_dir: Path) -> Signature:
    """saved_model/ and saved_model_xla/ serving a Keras 3 model that has no
    tf-keras twin (the layers format needs one; the graph and SavedModel
    paths do not), keyed as save_serving keys a twin's. Returns its
    signature, token inputs found in the saved graph."""
    tf = import_tensorflow()
    plain = _keras3_signature(model)
    keys = serving_keys(plain)
    struct = getattr(model, "_inputs_struct", None)

    def outputs(*xs):
        given = dict(zip(plain.names, xs, strict=True))
        if isinstance(struct, dict):  # built on a dict: each input under its key
            inputs = {key: given[t._keras_history[0].name] for key, t in struct.items()}
        else:
            inputs = xs[0] if len(xs) == 1 else list(xs)
        ys = model(inputs, training=False)
        ys = [ys[k] for k in sorted(ys)] if isinstance(ys, dict) else ys
        ys = ys if isinstance(ys, list | tuple) else [ys]
        return dict(zip(plain.outputs, ys, strict=True))

    spec = [
        tf.TensorSpec((None, *i.shape), i.dtype, name=key)
        for i, key in zip(plain.inputs, keys, strict=True)
    ]
    # Keras 3 variables wrap tf.Variables that tf.saved_model does not find
    # through the model: a module holding them saves them (as Keras's own
    # ExportArchive does).
    holder = tf.Module()
    holder.weights = [v.value for v in model.variables]
    for folder, xla in ((SAVED_MODEL.folder, None), (SAVED_MODEL_XLA.folder, True)):
        serve = tf.function(outputs, input_signature=spec, jit_compile=xla)
        tf.saved_model.save(holder, str(model_dir / folder), signatures={"serving_default": serve})
    found = {i.name: i for i in _saved_model_signature(model_dir / SAVED_MODEL.folder).inputs}
    inputs = tuple(
        replace(found[key], name=i.name, dtype=i.dtype)
        for i, key in zip(plain.inputs, keys, strict=True)
    )
    return Signature(inputs, plain.outputs)


def _keras3_signature(model) -> Signature:
    """A Keras 3 model's inputs by name and dtype (integers as ids of unknown
    range), for a folder none of whose paths run."""
    inputs = []
    for tensor in model.inputs:
        name = tensor._keras_history[0].name
        shape = tuple(tensor.shape[1:])
        if "int" in str(tensor.dtype):
            inputs.append(InputSpec(name, "int32", shape, "tokens", 0, 2))
        else:
            inputs.append(float_input(name, shape))
    return Signature(tuple(inputs), tuple(keras3.output_names(model)))


def export_model(
    source: Path, out_dir: Path, name: str | None = None, trust_lambda: bool = False
) -> dict:
    """Write out_dir (atomically) from a user's model; returns the manifest.
    A model with Lambda layers is refused unless `trust_lambda`."""
    if not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    model, kind = _load_source(source, trust_lambda)
    name = name or out_dir.name
    notes, unsupported = [], {}
    stateful_model = model
    # Why no format can hold the model (every path unsupported), or None.
    model, stateful, cannot = _stateless(model)
    untranslated = None  # why a Keras 3 model has no tf-keras twin: no layers format
    if kind == KERAS3 and cannot is None:
        try:
            model = keras3.to_tf_keras(model)
        except BridgeError as err:
            untranslated = str(err)
    with artifacts.model_lock(out_dir), artifacts.staged_dir(out_dir) as staging:
        if cannot:
            unsupported = dict.fromkeys(ALL_FORMATS, cannot)
            formats, classifier = (), False
            if kind == KERAS3:
                signature = _keras3_signature(model)
            else:
                signature = read_signature(model)  # the truth, stateful.h5, is saved below
        elif untranslated:
            signature = _serve_keras3(model, staging)
            notes.append("no tf-keras twin: the SavedModel serves the Keras 3 model, loops kept")
            unsupported["layers"] = untranslated
            formats, classifier = ("graph",), False
        elif model is not None:
            signature = read_signature(model)
            save_h5(model, staging / artifacts.KERAS_H5)
            if not save_serving(model, staging, trust_lambda):
                notes.append("time axis not fixed: the SavedModel keeps its While loop")
            classifier = is_classifier(model)
            formats = ("layers", "graph")
            lambdas = lambda_layers(model.get_config())
            if lambdas:
                which = f"layer{'s' if len(lambdas) > 1 else ''} {', '.join(lambdas)}"
                unsupported["layers"] = f"Lambda {which}: {LAMBDA_UNSUPPORTED}"
                formats = ("graph",)
        else:
            shutil.copytree(source, staging / SAVED_MODEL.folder)
            signature = _saved_model_signature(staging / SAVED_MODEL.folder)
            if any(i.kind == "tokens" and i.high <= 2 for i in signature.inputs):
                notes.append(
                    "integer inputs of a SavedModel: their valid ids are unknown; "
                    "give them with --input-range NAME=LO:HI"
                )
            classifier = False
            formats = ("graph",)
            subclassed = _subclassed_name(source)
            if subclassed:
                unsupported["layers"] = (
                    f"a subclassed keras.Model ({subclassed}): tfjs-layers holds Sequential and "
                    "functional models; its SavedModel's signature serves it"
                )
        input_shape = list(signature.inputs[0].shape)
        if stateful and kind == TF_KERAS:
            save_h5(stateful_model, staging / STATEFUL_H5)
        reference = {
            "tf_keras": {
                "kind": "tf_keras",
                "file": STATEFUL_H5 if stateful else artifacts.KERAS_H5,
            },
            "keras3": {"kind": "keras3", "file": "source.keras"},
            "saved_model": {"kind": "saved_model", "file": SAVED_MODEL.folder},
        }[kind]
        if kind == "keras3":
            shutil.copyfile(source, staging / "source.keras")
        if stateful and not cannot:
            notes.append(
                f"stateful, batch {stateful['batch']}: every format holds its stateless twin "
                "(same weights, batch free); the truth is the stateful model, reset before "
                "each sequence"
            )
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
            **({"stateful": stateful} if stateful else {}),
            "notes": notes,
            "versions": python_versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        manifest["files"] = artifacts.file_hashes(staging)  # what the converters may read
        artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
        with shared_converter():  # the converter starts once for every format
            for fmt in formats:  # one format's failure leaves the others to verify
                try:
                    convert_in_place(staging, (fmt,))
                except ConverterError as err:
                    shutil.rmtree(
                        staging / FORMATS[fmt].folder, ignore_errors=True
                    )  # nothing half-written
                    unsupported[fmt] = str(err)
        manifest = artifacts.read_manifest(staging)
        manifest["unsupported"] = unsupported
        manifest["notes"] += [
            f"{fmt} format unsupported: {why}" for fmt, why in unsupported.items()
        ]
        hashes = artifacts.file_hashes(staging)
        manifest["files"] = {k: v for k, v in hashes.items() if k != artifacts.MANIFEST}
        artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
    return manifest


def _saved_model_signature(folder: Path) -> Signature:
    """The I/O contract of a SavedModel that is not Keras: its serving
    signature's inputs (sorted by key, as Node sorts them) and outputs. An
    input that feeds an embedding lookup takes token ids, whatever its dtype
    (a float32 one too: uniform floats in [-1, 1] would all become id 0),
    within the table's rows; other integer inputs are ids of unknown range."""
    tf = import_tensorflow()
    loaded = tf.saved_model.load(str(folder))  # kept alive: the signature's variables
    serve = loaded.signatures["serving_default"]
    specs = sorted(serve.structured_input_signature[1].items())
    vocabularies = _token_vocabularies(serve, [key for key, _ in specs])
    inputs = []
    for key, spec in specs:
        shape = tuple(spec.shape[1:])
        dtype = "int32" if spec.dtype.is_integer else "float32"
        if key in vocabularies:
            inputs.append(InputSpec(key, dtype, shape, "tokens", 0, vocabularies[key]))
        elif spec.dtype.is_integer:
            inputs.append(InputSpec(key, "int32", shape, "tokens", 0, 2))
        else:
            inputs.append(float_input(key, shape))
    return Signature(tuple(inputs), tuple(sorted(serve.structured_outputs)))


# Ops through which an input's values reach an embedding lookup still as ids.
ID_PRESERVING_OPS = frozenset({
    "Identity", "IdentityN", "Cast", "Select", "SelectV2", "Reshape", "Squeeze",
    "ExpandDims", "Transpose", "StridedSlice", "Maximum", "Minimum", "ClipByValue",
    "Add", "AddV2", "Floor", "Round",
})  # fmt: skip
LOOKUP_OPS = frozenset({"GatherV2", "ResourceGather", "Gather"})


def _token_vocabularies(serve, keys: list[str]) -> dict[str, int]:
    """key -> rows of the embedding table it indexes, for each input of the
    serving function that reaches a lookup's indices through ID_PRESERVING_OPS
    only (read from the function with its variables frozen, calls inlined)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    try:
        with native_stderr_hidden():  # grappler logs its session to fd 2
            frozen = convert_variables_to_constants_v2(serve)
    except Exception:  # a graph that cannot be frozen: its inputs keep their dtype's domain
        return {}
    nodes = {n.name: n for n in frozen.graph.as_graph_def().node}
    consumers: dict[str, list] = {}
    for node in nodes.values():
        for index, name in enumerate(node.input):
            if not name.startswith("^"):
                consumers.setdefault(name.split(":")[0], []).append((node, index))

    def rows(name: str) -> int | None:
        """The first dimension of a lookup's table, through reads and identities."""
        for _ in range(20):
            node = nodes.get(name.split(":")[0])
            if node is None:
                return None
            if node.op == "Const":
                dims = node.attr["value"].tensor.tensor_shape.dim
                return int(dims[0].size) if dims else None
            if not node.input:
                return None
            name = node.input[0]
        return None

    found = {}
    placeholders = [t.name.split(":")[0] for t in frozen.inputs[: len(keys)]]
    for key, placeholder in zip(keys, placeholders, strict=True):
        seen, todo, sizes = set(), [placeholder], []
        while todo:
            name = todo.pop()
            for node, index in consumers.get(name, []):
                if node.op in LOOKUP_OPS and index == 1:
                    sizes.append(rows(node.input[0]))
                elif node.op in ID_PRESERVING_OPS and node.name not in seen:
                    seen.add(node.name)
                    todo.append(node.name)
        sizes = [n for n in sizes if n]
        if sizes:
            found[key] = min(sizes)
    return found
