"""A model folder's tflite/model.tflite run in Python's TFLite interpreter
(TensorFlow's own, tf.lite.Interpreter), by the SavedModel's signature names:
the LiteRT path that verify's comparison rules can be applied to.

The file is checked against manifest.json's sha256 before it is read, as
every Node path checks its files. The batch dimension is resized to the
inputs' before tensors are allocated (the converter keeps it dynamic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..conversion.tflite_export import interpreter
from ..core.errors import BridgeError
from ..core.quiet_tf import native_stderr_hidden
from ..folder import artifacts
from ..folder.formats import TFLITE

SIGNATURE = "serving_default"


class TfliteModel:
    """``m = TfliteModel(folder); ys = m.predict({"input": x})``: outputs by name."""

    def __init__(self, model_dir: Path):
        path = TFLITE.path(model_dir)
        if not path.exists():
            raise BridgeError(f"{path}: not found: run `{TFLITE.made_by}` for this model")
        artifacts.check_integrity(model_dir, [f"{TFLITE.folder}/{TFLITE.entry}"])
        self.interpreter = interpreter(path)
        runner = self.interpreter.get_signature_runner(SIGNATURE)
        # name -> tensor index; set_tensor and get_tensor copy, so no view into
        # the interpreter's memory outlives a call and blocks a later resize.
        self.inputs = {k: d["index"] for k, d in runner.get_input_details().items()}
        self.outputs = {k: d["index"] for k, d in runner.get_output_details().items()}
        self._batch = None

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if sorted(inputs) != sorted(self.inputs):
            raise BridgeError(
                f"tflite: inputs {sorted(inputs)} given, the model takes {sorted(self.inputs)}"
            )
        batch = len(next(iter(inputs.values())))
        if batch != self._batch:
            for name, index in self.inputs.items():
                self.interpreter.resize_tensor_input(index, [batch, *inputs[name].shape[1:]])
            with native_stderr_hidden():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                self.interpreter.allocate_tensors()
            self._batch = batch
        for name, index in self.inputs.items():
            self.interpreter.set_tensor(index, inputs[name])
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(index) for name, index in self.outputs.items()}
