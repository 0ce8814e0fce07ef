"""The ONNX route (optional: `make onnx`): keras.h5 -> onnx/model.onnx with
tf2onnx, for onnxruntime-node. Exported from the model as trained (its RNN
loop intact), which tf2onnx maps onto ONNX's fused GRU/LSTM ops where it can
(Keras's default GRU), else onto a generic Loop. Input "input", outputs as in
the SavedModel signature (Keras's output names)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from . import artifacts
from .errors import BridgeError
from .formats import FORMATS
from .tfimport import import_tensorflow, native_stderr_hidden

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
    import tf_keras

    from .keras3 import CUSTOM_OBJECTS

    model = tf_keras.models.load_model(
        model_dir / artifacts.KERAS_H5, compile=False, custom_objects=CUSTOM_OBJECTS
    )
    names = list(model.output_names)
    spec = [tf.TensorSpec(model.inputs[0].shape, tf.float32, name="input")]

    @tf.function(input_signature=spec)
    def serve(x):
        ys = model(x, training=False)
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
