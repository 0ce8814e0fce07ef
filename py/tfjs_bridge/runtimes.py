"""The Node paths a converted model can run on: a tfjs backend (one per Node
process) and a model format. verify and bench iterate this table; a path that
is not here is not verified, and so is not offered."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Runtime:
    name: str
    backend: str  # node/lib/backends.js: tensorflow | cpu | wasm | onnxruntime
    format: str  # node/lib/models.js: layers | graph | saved_model[_xla] | onnx
    description: str


RUNTIMES: dict[str, Runtime] = {
    rt.name: rt
    for rt in [
        Runtime("tfjs-node/layers", "tensorflow", "layers", "tfjs-node, tf.loadLayersModel"),
        Runtime("tfjs-node/graph", "tensorflow", "graph", "tfjs-node, tf.loadGraphModel"),
        Runtime(
            "tfjs-node/saved_model",
            "tensorflow",
            "saved_model",
            "tfjs-node, tf.node.loadSavedModel",
        ),
        Runtime(
            "tfjs-node/saved_model_xla",
            "tensorflow",
            "saved_model_xla",
            "tfjs-node, tf.node.loadSavedModel of an XLA-compiled serving function",
        ),
        Runtime("tfjs-cpu/layers", "cpu", "layers", "@tensorflow/tfjs pure-JS CPU backend"),
        Runtime("tfjs-cpu/graph", "cpu", "graph", "@tensorflow/tfjs pure-JS CPU backend"),
        Runtime("tfjs-wasm/layers", "wasm", "layers", "@tensorflow/tfjs-backend-wasm"),
        Runtime("tfjs-wasm/graph", "wasm", "graph", "@tensorflow/tfjs-backend-wasm"),
        # Optional (`make onnx`): tf2onnx export, run by onnxruntime-node.
        Runtime("onnxruntime-node/onnx", "onnxruntime", "onnx", "onnxruntime-node, tf2onnx export"),
    ]
}


# Installed by `make onnx` only: absent, their runtimes are not offered.
OPTIONAL_BACKENDS = {"onnxruntime": "onnxruntime-node"}


def optional_missing(rt: Runtime) -> str | None:
    """Why an optional runtime cannot run here (None when it can)."""
    from .paths import NODE_MODULES

    package = OPTIONAL_BACKENDS.get(rt.backend)
    if package and not (NODE_MODULES / package / "package.json").exists():
        return f"{package} is not installed: run `make onnx`"
    return None


def resolve_runtimes(names: tuple[str, ...] | list[str]) -> list[Runtime]:
    """The runtimes named (a backend name such as `tfjs-wasm` selects all of
    its formats), or all installed ones when none are."""
    if not names:
        return [rt for rt in RUNTIMES.values() if not optional_missing(rt)]
    chosen: list[Runtime] = []
    for name in names:
        matches = [rt for rt in RUNTIMES.values() if name in (rt.name, rt.name.split("/")[0])]
        if not matches:
            known = ", ".join(RUNTIMES)
            raise UsageError(f"unknown runtime '{name}' (known: {known})")
        chosen.extend(rt for rt in matches if rt not in chosen)
    return chosen
