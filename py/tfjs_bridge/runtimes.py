"""The Node paths a converted model can run on: a tfjs backend (one per Node
process) and a format (formats.py). This module owns both tables, the
backends (which npm package, and how to get it) and the runtimes (the paths);
Node reads them from the generated node/vocabulary.json. verify and bench
iterate RUNTIMES; a path that is not here is not verified, and so is not offered."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Backend:
    name: str
    package: str  # the npm package Node requires for it
    optional: bool  # not installed by `make setup`: absent, its runtimes are not offered
    install: str  # what installs the package


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in [
        # The native TensorFlow, linked to the Python one (`tfjs-bridge build-addon`).
        Backend("tensorflow", "@tensorflow/tfjs-node", False, "make setup"),
        Backend("cpu", "@tensorflow/tfjs", False, "make setup"),  # pure JavaScript
        Backend("wasm", "@tensorflow/tfjs-backend-wasm", False, "make setup"),
        # No tfjs at all: runs the tf2onnx export (290 MB, hence optional).
        Backend("onnxruntime", "onnxruntime-node", True, "make onnx"),
    ]
}


@dataclass(frozen=True)
class Runtime:
    name: str
    backend: str  # a key of BACKENDS
    format: str  # a key of formats.FORMATS
    description: str
    # Node's order of preference when a model folder has no speed figures
    # (parity.json, from `tfjs-bridge bench`): 0 first. What bench measured
    # on this machine kind. None: never chosen by default (the pure-JS and
    # WASM backends are for users who cannot install tfjs-node).
    default_rank: int | None = None


RUNTIMES: dict[str, Runtime] = {
    rt.name: rt
    for rt in [
        Runtime("tfjs-node/layers", "tensorflow", "layers", "tfjs-node, tf.loadLayersModel", 4),
        Runtime("tfjs-node/graph", "tensorflow", "graph", "tfjs-node, tf.loadGraphModel", 3),
        Runtime(
            "tfjs-node/saved_model",
            "tensorflow",
            "saved_model",
            "tfjs-node, tf.node.loadSavedModel",
            0,
        ),
        Runtime(
            "tfjs-node/saved_model_xla",
            "tensorflow",
            "saved_model_xla",
            "tfjs-node, tf.node.loadSavedModel of an XLA-compiled serving function",
            1,
        ),
        Runtime("tfjs-cpu/layers", "cpu", "layers", "@tensorflow/tfjs pure-JS CPU backend"),
        Runtime("tfjs-cpu/graph", "cpu", "graph", "@tensorflow/tfjs pure-JS CPU backend"),
        Runtime("tfjs-wasm/layers", "wasm", "layers", "@tensorflow/tfjs-backend-wasm"),
        Runtime("tfjs-wasm/graph", "wasm", "graph", "@tensorflow/tfjs-backend-wasm"),
        # Optional (`make onnx`): tf2onnx export, run by onnxruntime-node.
        Runtime(
            "onnxruntime-node/onnx", "onnxruntime", "onnx", "onnxruntime-node, tf2onnx export", 2
        ),
    ]
}


def optional_missing(rt: Runtime) -> str | None:
    """Why an optional runtime cannot run here (None when it can)."""
    from .paths import NODE_MODULES

    backend = BACKENDS[rt.backend]
    if backend.optional and not (NODE_MODULES / backend.package / "package.json").exists():
        return f"{backend.package} is not installed: run `{backend.install}`"
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
