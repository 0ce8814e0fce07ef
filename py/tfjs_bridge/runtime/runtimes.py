"""The Node paths a converted model can run on: a tfjs backend (one per Node
process) and a format (folder/formats.py). This module owns both tables, the
backends (which npm package, and how to get it) and the runtimes (the paths);
Node reads them from the generated node/vocabulary.json. verify and bench
iterate RUNTIMES; a path that is not here is not verified, and so is not offered.

The browser paths (BROWSER_RUNTIMES, docs/browser.md) are a browser, a tfjs
backend in its page and a format: node/worker.js drives the browser, so to
verify and bench they are one more worker backend ("chromium-webgl"). They
are run when asked for (`--runtime chromium`), never by default: a browser
is a system package that `make setup` does not install.

The LiteRT.js and ONNX Runtime Web paths (ENGINE_RUNTIMES, docs/runtimes.md)
are browser paths too, through the same driver and worker contract, but with
no tfjs in the page: LiteRT.js (@litertjs/core) runs the folder's .tflite,
onnxruntime-web its .onnx. They are asked for by name (`--runtime
chromium-litert-wasm`, `chromium-ort-wasm`, `chromium-ort-webgpu`);
`--runtime chromium` means the tfjs paths.

The stream paths (STREAM_RUNTIMES, docs/streaming.md) run the layers model
as streams fed each sequence in chunks of steps (node/lib/layers/stream.js),
and must give what the whole model gives. They too are run when named
(`--runtime tfjs-node/stream`): a model that cannot stream (a Bidirectional
layer) is `unsupported` there, which a default run should not report."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from ..core.errors import UsageError


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
    # The layers model fed to streams in chunks of steps, not run whole.
    stream: bool = False
    # A stream path's ops (node/lib/layers/stream.js's streamOpsFor): auto,
    # Node's crossover by batch; array, array ops at every batch.
    stream_ops: str = "auto"


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


@dataclass(frozen=True)
class Browser:
    name: str
    env: str  # the user's own browser: TFJS_BRIDGE_CHROMIUM=/path/to/chrome
    executables: tuple[str, ...]  # looked up on PATH in this order (Debian's first)
    protocol: str  # how puppeteer-core drives it: cdp | webDriverBiDi
    backends: tuple[str, ...]  # the tfjs backends verified in its page
    # Backends that need a display (not headless): Xvfb when DISPLAY is unset.
    # Firefox's WebGL 2 (Mesa llvmpipe) exists only with one.
    display_backends: tuple[str, ...] = ()
    install: str = "make browser"


BROWSERS: dict[str, Browser] = {
    b.name: b
    for b in [
        Browser(
            "chromium",
            "TFJS_BRIDGE_CHROMIUM",
            ("chromium", "chromium-browser", "google-chrome"),
            "cdp",
            ("cpu", "wasm", "webgl", "webgpu"),
        ),
        Browser(
            "firefox",
            "TFJS_BRIDGE_FIREFOX",
            ("firefox-esr", "firefox"),
            "webDriverBiDi",
            ("cpu", "wasm", "webgl"),
            display_backends=("webgl",),
        ),
    ]
}
BROWSER_FORMATS = ("layers", "graph")
XVFB = "Xvfb"  # what gives a display-needing backend its display when there is none


@dataclass(frozen=True)
class BrowserBackend:
    """A worker backend that is a browser's page on one backend: `chromium-webgl`
    (tfjs), `chromium-litert-wasm` (LiteRT.js)."""

    name: str
    browser: str  # a key of BROWSERS
    # The backend in the page: tfjs's (cpu | wasm | webgl | webgpu), or, for
    # another engine, its accelerator or execution provider (wasm).
    tfjs_backend: str
    engine: str = "tfjs"  # what runs the model in the page: tfjs, or a key of PAGE_ENGINES


BROWSER_BACKENDS: dict[str, BrowserBackend] = {
    f"{b.name}-{tb}": BrowserBackend(f"{b.name}-{tb}", b.name, tb)
    for b in BROWSERS.values()
    for tb in b.backends
}

BROWSER_RUNTIMES: dict[str, Runtime] = {
    f"{bb.name}/{fmt}": Runtime(
        f"{bb.name}/{fmt}", bb.name, fmt, f"{bb.browser} page, tfjs {bb.tfjs_backend} backend"
    )
    for bb in BROWSER_BACKENDS.values()
    for fmt in BROWSER_FORMATS
}


# Runtimes other than tfjs in a Chromium page, on the folder's other formats:
# LiteRT.js (Google's successor to tfjs on the web) on the .tflite, and ONNX
# Runtime Web on the .onnx (the optional ONNX route). On WebAssembly, one
# thread (no cross-origin isolation needed), and both on WebGPU too
# (SwiftShader on a machine with no GPU); LiteRT.js's WebGPU delegate runs
# the .tflite converted at a static batch (`convert --static-batch`).
@dataclass(frozen=True)
class PageEngine:
    name: str  # BrowserBackend.engine
    package: str  # the npm package the page runs
    install: str  # what installs it
    format: str  # the format its page runs (formats.FORMATS)
    label: str  # its name for people


PAGE_ENGINES: dict[str, PageEngine] = {
    e.name: e
    for e in [
        PageEngine("litert", "@litertjs/core", "make setup", "tflite", "LiteRT.js"),
        PageEngine("ort", "onnxruntime-web", "make onnx", "onnx", "ONNX Runtime Web"),
    ]
}
ENGINE_BACKENDS: dict[str, BrowserBackend] = {
    bb.name: bb
    for bb in [
        BrowserBackend("chromium-litert-wasm", "chromium", "wasm", "litert"),
        BrowserBackend("chromium-ort-wasm", "chromium", "wasm", "ort"),
        BrowserBackend("chromium-ort-webgpu", "chromium", "webgpu", "ort"),
        BrowserBackend("chromium-litert-webgpu", "chromium", "webgpu", "litert"),
    ]
}
ENGINE_RUNTIMES: dict[str, Runtime] = {
    f"{bb.name}/{engine.format}": Runtime(
        f"{bb.name}/{engine.format}",
        bb.name,
        engine.format,
        f"{bb.browser} page, {engine.label} ({engine.package}) {bb.tfjs_backend}",
    )
    for bb in ENGINE_BACKENDS.values()
    for engine in [PAGE_ENGINES[bb.engine]]
}
# Every backend node/worker.js drives a browser page for (vocabulary.json's browser_backends).
PAGE_BACKENDS: dict[str, BrowserBackend] = {**BROWSER_BACKENDS, **ENGINE_BACKENDS}
STREAM_RUNTIMES: dict[str, Runtime] = {
    rt.name: rt
    for rt in [
        Runtime(
            "tfjs-node/stream",
            "tensorflow",
            "layers",
            "tfjs-node, the layers model fed to streams in chunks",
            stream=True,
        ),
        # the array ops at every batch, so that every sample is judged on the
        # ops a stream of few rows steps on (tfjs-node/stream's big batches
        # step on TensorFlow's ops, only its batches of one on these)
        Runtime(
            "tfjs-node/stream-array",
            "tensorflow",
            "layers",
            "tfjs-node, the layers model fed to streams in chunks, stepped on array ops",
            stream=True,
            stream_ops="array",
        ),
        Runtime(
            "tfjs-cpu/stream",
            "cpu",
            "layers",
            "@tensorflow/tfjs pure-JS CPU backend, fed to streams in chunks",
            stream=True,
        ),
        Runtime(
            "tfjs-wasm/stream",
            "wasm",
            "layers",
            "@tensorflow/tfjs-backend-wasm, fed to streams in chunks",
            stream=True,
        ),
    ]
}
# LiteRT.js in a Node process (node/lib/runtime/litert_node.js): @litertjs/core
# is written for pages and workers, and runs in Node given the two globals its
# loader uses there (docs/runtimes.md). Its own worker backend, with no tfjs;
# named only with --runtime, never chosen by Node (tfjs-node runs the same
# models natively), so not in BACKENDS and RUNTIMES, which Node's defaults use.
NODE_ENGINE_BACKENDS: dict[str, Backend] = {
    "litert": Backend("litert", "@litertjs/core", False, "make setup"),
}
NODE_ENGINE_RUNTIMES: dict[str, Runtime] = {
    "litert-node-wasm/tflite": Runtime(
        "litert-node-wasm/tflite",
        "litert",
        "tflite",
        "LiteRT.js (@litertjs/core) in Node, WASM accelerator (XNNPack), one thread",
    ),
}
# Not Node: the tflite format in Python's TFLite interpreter (LiteRT), run in
# the verifying process itself (tflite_worker.py); named only with --runtime,
# never chosen by Node, not in node/vocabulary.json.
PYTHON_RUNTIMES: dict[str, Runtime] = {
    "python-tflite/tflite": Runtime(
        "python-tflite/tflite",
        "python-tflite",
        "tflite",
        "Python's TFLite interpreter (tf.lite.Interpreter): LiteRT, builtin ops",
    ),
}
ALL_RUNTIMES: dict[str, Runtime] = {
    **RUNTIMES, **BROWSER_RUNTIMES, **ENGINE_RUNTIMES, **STREAM_RUNTIMES, **NODE_ENGINE_RUNTIMES,
    **PYTHON_RUNTIMES
}  # fmt: skip


def browser_executable(browser: Browser) -> str | None:
    """The browser to launch: $TFJS_BRIDGE_<NAME> when set, else the first of
    its executables on PATH (node/lib/browser/launch.js looks alike)."""
    own = os.environ.get(browser.env)
    if own:
        return own if os.path.isfile(own) and os.access(own, os.X_OK) else None
    return next(filter(None, map(shutil.which, browser.executables)), None)


def browser_missing(backend: str) -> str | None:
    """Why a browser backend cannot run here (None when it can)."""
    bb = PAGE_BACKENDS[backend]
    browser = BROWSERS[bb.browser]
    own = os.environ.get(browser.env)
    if own and browser_executable(browser) is None:
        return f"{browser.env}={own} is not an executable file"
    if browser_executable(browser) is None:
        return (
            f"{browser.name} is not installed ({' or '.join(browser.executables)} not on PATH):"
            f" run `{browser.install}`, or set {browser.env}=/path/to/{browser.name}"
        )
    needs_display = bb.tfjs_backend in browser.display_backends
    if needs_display and not os.environ.get("DISPLAY") and shutil.which(XVFB) is None:
        return (
            f"{bb.name} needs a display: {XVFB} is not installed and DISPLAY is unset:"
            f" run `{browser.install}`"
        )
    return None


def optional_missing(rt: Runtime) -> str | None:
    """Why an optional runtime (a package or a browser) cannot run here (None when it can)."""
    from ..core.paths import NODE_MODULES

    if rt.backend in ENGINE_BACKENDS:
        engine = PAGE_ENGINES[ENGINE_BACKENDS[rt.backend].engine]
        if not (NODE_MODULES / engine.package / "package.json").exists():
            return f"{engine.package} is not installed: run `{engine.install}`"
    if rt.backend in PAGE_BACKENDS:
        return browser_missing(rt.backend)
    if rt.name in PYTHON_RUNTIMES:  # the pinned TensorFlow's own interpreter
        return None
    backend = {**BACKENDS, **NODE_ENGINE_BACKENDS}[rt.backend]
    if backend.optional and not (NODE_MODULES / backend.package / "package.json").exists():
        return f"{backend.package} is not installed: run `{backend.install}`"
    return None


# What resolve_runtimes takes, for the `--runtime` options.
RUNTIME_HELP = (
    "A Node path (tfjs-node/layers), a backend (tfjs-wasm), a browser path "
    "(chromium-webgl/layers), backend (chromium-webgl) or browser (chromium, firefox; "
    "`make browser`), LiteRT.js or ONNX Runtime Web in Chromium (chromium-litert-wasm, "
    "chromium-ort-wasm, chromium-ort-webgpu, chromium-litert-webgpu), a stream path "
    "(tfjs-node/stream), LiteRT.js in Node (litert-node-wasm/tflite), or python-tflite/tflite "
    "(the .tflite in Python's TFLite interpreter); repeatable [default: every Node path]."
)


def resolve_runtimes(names: tuple[str, ...] | list[str]) -> list[Runtime]:
    """The runtimes named (a backend name such as `tfjs-wasm` or `chromium-webgl`
    selects all of its formats, a browser name all of its paths), or all
    installed Node ones when none are (browser paths only when named)."""
    if not names:
        return [rt for rt in RUNTIMES.values() if not optional_missing(rt)]
    chosen: list[Runtime] = []
    for name in names:
        matches = [
            rt
            for rt in ALL_RUNTIMES.values()
            # (a stream path only by its own name: `tfjs-node` means the whole-model paths)
            if name == rt.name
            or (name == rt.name.split("/")[0] and not rt.stream)
            or (rt.backend in BROWSER_BACKENDS and BROWSER_BACKENDS[rt.backend].browser == name)
        ]
        if not matches:
            known = ", ".join([*ALL_RUNTIMES, *BROWSERS])
            raise UsageError(f"unknown runtime '{name}' (known: {known})")
        chosen.extend(rt for rt in matches if rt not in chosen)
    return chosen
