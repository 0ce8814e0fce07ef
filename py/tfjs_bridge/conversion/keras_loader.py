"""The one way tfjs-bridge loads a Keras model from a file.

tf-keras (Keras 2: `.h5`, SavedModel folders) or Keras 3 (`.keras`, or a
legacy `.h5` read by Keras 3); never compiled (only inference is asked of
it); always with the custom objects that converted models may name; and
Keras's safe mode decided here, once: a `Lambda` layer's code comes from the
file, so it is run only when the user said so (`trust_lambda`)."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..core.errors import BridgeError, first_line
from ..core.quiet_tf import import_tensorflow

TF_KERAS = "tf_keras"
KERAS3 = "keras3"

# Every recurrent layer class a Keras config can name. The subsets below say
# which of them an operation applies to, and why.
RECURRENT_LAYERS = frozenset({"SimpleRNN", "GRU", "LSTM", "RNN", "ConvLSTM1D", "ConvLSTM2D"})
# Those with an `unroll` option that tf-keras honours (ConvLSTM layers have none).
UNROLLABLE_LAYERS = frozenset({"SimpleRNN", "GRU", "LSTM", "RNN"})
# Those that tfjs-layers and tf-keras both build from a cell with an `implementation` option.
CELL_LAYERS = frozenset({"SimpleRNN", "GRU", "LSTM"})

KERAS3_HARD_SIGMOID = "keras3_hard_sigmoid"


def keras3_hard_sigmoid(x):
    """Keras 3's hard_sigmoid, in tf-keras: relu6(x + 3) / 6."""
    import tensorflow as tf

    return tf.nn.relu6(x + 3.0) / 6.0


# What a tf-keras model written by conversion.keras3 may name.
CUSTOM_OBJECTS = {KERAS3_HARD_SIGMOID: keras3_hard_sigmoid}

LAMBDA_REFUSED = (
    "whose code comes from the file: loading it runs that code; "
    "pass --trust-lambda if you trust the file"
)
TRUST_LAMBDA_HELP = (
    "Load a model's Lambda layers, whose Python code comes from the model file "
    "(this runs it: only for files you trust). tfjs-layers cannot run them: the "
    "layers format is then unsupported, the graph and SavedModel paths are verified."
)


def lambda_layers(config) -> list[str]:
    """The names of the Lambda layers in a Keras model config (nested models,
    wrappers and all), read without deserialising anything."""
    found = []
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            found.append((config.get("config") or {}).get("name") or config.get("name") or "?")
        for value in config.values():
            found += lambda_layers(value)
    elif isinstance(config, list):
        for value in config:
            found += lambda_layers(value)
    return found


def _file_config(path: Path):
    """The model config a Keras file records, as JSON, or None: .h5 (the
    model_config attribute), .keras (config.json in the archive), a tf-keras
    SavedModel (keras_metadata.pb)."""
    import json
    import zipfile

    path = Path(path)
    try:
        if path.is_dir():
            metadata = path / "keras_metadata.pb"
            if not metadata.exists():
                return None
            from tf_keras.protobuf import saved_metadata_pb2

            proto = saved_metadata_pb2.SavedMetadata()
            proto.ParseFromString(metadata.read_bytes())
            return [json.loads(node.metadata) for node in proto.nodes if node.metadata]
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        if raw is None:
            return None
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:  # not readable as such: load_model says why, in one line
        return None


def lambda_refusal(path: Path) -> str | None:
    """The one-line refusal for a file holding Lambda layers, naming them; None without any."""
    names = lambda_layers(_file_config(path))
    if not names:
        return None
    which = ", ".join(dict.fromkeys(names))
    return f"{path}: Lambda layer{'s' if len(set(names)) > 1 else ''} {which}, {LAMBDA_REFUSED}"


def load_keras(path: Path, flavour: str = TF_KERAS, *, trust_lambda: bool = False):
    """The Keras model in `path`, by tf-keras (`flavour="tf_keras"`) or Keras 3
    (`"keras3"`); a file neither can load is a one-line BridgeError. A file
    with Lambda layers is refused unless `trust_lambda` (tf-keras's .h5
    loader would run their code regardless of its safe mode)."""
    import_tensorflow()
    if not trust_lambda:
        refused = lambda_refusal(path)
        if refused:
            raise BridgeError(refused)
    try:
        with warnings.catch_warnings():
            # Keras 3 warns of a first layer given input_shape: how legacy configs say it.
            warnings.simplefilter("ignore", UserWarning)
            if flavour == TF_KERAS:
                import tf_keras

                return tf_keras.models.load_model(
                    path, compile=False, custom_objects=CUSTOM_OBJECTS, safe_mode=not trust_lambda
                )
            if flavour == KERAS3:
                import keras

                return keras.saving.load_model(
                    path, compile=False, custom_objects=CUSTOM_OBJECTS, safe_mode=not trust_lambda
                )
    except Exception as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc) and "unsafe" in str(exc).lower():
            raise BridgeError(f"{path}: a Lambda layer, {LAMBDA_REFUSED}") from None
        what = "Keras 3" if flavour == KERAS3 else "tf-keras"
        if Path(path).suffix.lower() in (".h5", ".hdf5") and flavour == TF_KERAS:
            what += " .h5"
        raise BridgeError(f"{path}: not a loadable {what} model ({first_line(exc)})") from None
    raise ValueError(f"unknown Keras flavour {flavour!r}")
