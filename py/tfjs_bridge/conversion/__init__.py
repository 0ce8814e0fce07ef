"""From a Keras model to every format Node runs: export (a user's model to a
model folder), tensorflowjs_converter, quantization, Keras 3, ONNX."""
