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
    "holds a Lambda layer, whose code comes from the file: loading it runs that code; "
    "pass --trust-lambda if you trust the file"
)


def load_keras(path: Path, flavour: str = TF_KERAS, *, trust_lambda: bool = False):
    """The Keras model in `path`, by tf-keras (`flavour="tf_keras"`) or Keras 3
    (`"keras3"`); a file neither can load is a one-line BridgeError."""
    import_tensorflow()
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
            raise BridgeError(f"{path}: {LAMBDA_REFUSED}") from None
        what = "Keras 3" if flavour == KERAS3 else "tf-keras"
        if Path(path).suffix.lower() in (".h5", ".hdf5") and flavour == TF_KERAS:
            what += " .h5"
        raise BridgeError(f"{path}: not a loadable {what} model ({first_line(exc)})") from None
    raise ValueError(f"unknown Keras flavour {flavour!r}")
