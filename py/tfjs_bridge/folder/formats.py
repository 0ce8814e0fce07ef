"""The model formats Node runs (and tflite, which LiteRT runs), and where each
lives inside a model folder: the one table of them. Training, conversion,
export and verify read it here; Node reads it from the generated
node/vocabulary.json (contract.py).

keras.h5 and manifest.json (artifacts.py) are in a model folder too, but Node
runs neither: they are not formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Format:
    name: str  # layers | graph | saved_model | saved_model_xla | onnx | tflite
    folder: str  # inside a model folder
    entry: str | None  # the file Node loads, relative to folder; None: the folder itself
    marker: str  # relative to folder: present, the format exists
    made_by: str  # the command that writes it, for error messages

    def path(self, model_dir: Path) -> Path:
        """What Node loads: the entry file, or the folder itself."""
        folder = model_dir / self.folder
        return folder / self.entry if self.entry else folder

    def present(self, model_dir: Path) -> bool:
        return (model_dir / self.folder / self.marker).exists()


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("layers", "tfjs_layers", "model.json", "model.json",
               "tfjs-bridge convert --format layers"),
        Format("graph", "tfjs_graph", "model.json", "model.json",
               "tfjs-bridge convert --format graph"),
        # Written with keras.h5 by train and export: an unrolled twin, same weights.
        Format("saved_model", "saved_model", None, "saved_model.pb", "tfjs-bridge train"),
        # The same, its serving function compiled by XLA (jit_compile).
        Format("saved_model_xla", "saved_model_xla", None, "saved_model.pb", "tfjs-bridge train"),
        # Optional (`make onnx`): a tf2onnx export of keras.h5.
        Format("onnx", "onnx", "model.onnx", "model.onnx", "tfjs-bridge convert --format onnx"),
        # From saved_model/, TFLite builtin ops only, for LiteRT (Python's TFLite
        # interpreter; LiteRT.js): no Node path runs it.
        Format("tflite", "tflite", "model.tflite", "model.tflite",
               "tfjs-bridge convert --format tflite"),
    ]
}  # fmt: skip

# Each format by name, for code that means one of them.
LAYERS = FORMATS["layers"]
GRAPH = FORMATS["graph"]
SAVED_MODEL = FORMATS["saved_model"]
SAVED_MODEL_XLA = FORMATS["saved_model_xla"]
ONNX = FORMATS["onnx"]
TFLITE = FORMATS["tflite"]

# A weight's bytes per element in each dtype a tfjs weights manifest may name
# (quantized weights included): what reading and sizing shards needs.
DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "uint8": 1, "float16": 2}
