"""The ONNX route (optional: `make onnx`): keras.h5 -> onnx/model.onnx with
tf2onnx, for onnxruntime-node. Exported from the model as trained (its RNN
loop intact), which tf2onnx maps onto ONNX's fused GRU/LSTM ops where it can
(Keras's default GRU), else onto a generic Loop. Inputs and outputs named and
typed as in the SavedModel signature (export.py's serving_keys: "input" for
one input, else the Keras input names, int32 token ids included; outputs by
Keras's output names)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from ..core.errors import BridgeError
from ..core.quiet_tf import import_tensorflow, native_stderr_hidden
from ..folder import artifacts
from ..folder.formats import FORMATS
from ..folder.signature import read_signature
from .export import serving_keys
from .keras_loader import TF_KERAS, load_keras

OPSET = 17


def tf2onnx_version() -> str:
    try:
        return importlib.metadata.version("tf2onnx")
    except importlib.metadata.PackageNotFoundError:
        raise BridgeError("the ONNX route needs tf2onnx: run `make onnx`") from None


def export_onnx(model_dir: Path, out_dir: Path) -> dict:
    """Write out_dir/model.onnx (out_dir: the onnx format's folder) from
    model_dir/keras.h5; returns what to record."""
    version = tf2onnx_version()
    tf = import_tensorflow()
    import tf2onnx

    model = load_keras(model_dir / artifacts.KERAS_H5, TF_KERAS)
    names = list(model.output_names)
    signature = read_signature(model)
    spec = [
        tf.TensorSpec((None, *i.shape), i.dtype, name=key)
        for i, key in zip(signature.inputs, serving_keys(signature), strict=True)
    ]

    @tf.function(input_signature=spec)
    def serve(*xs):
        ys = model(xs[0] if len(xs) == 1 else list(xs), training=False)
        ys = ys if isinstance(ys, list | tuple) else [ys]
        return dict(zip(names, ys, strict=True))

    output = out_dir / FORMATS["onnx"].entry
    with native_stderr_hidden():
        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=spec, opset=OPSET, output_path=str(output)
        )
    return {
        "converter": "tf2onnx",
        "converter_version": version,
        "opset": OPSET,
        "ops": sorted({node.op_type for node in proto.graph.node}),
    }
