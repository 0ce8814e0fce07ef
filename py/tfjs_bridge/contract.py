"""The Node contract: the JSON files through which Node knows what Python
defines, generated here and nowhere else (`tfjs-bridge registry` writes them,
`tfjs-bridge registry --check`, run by `make test`, fails when one drifts).

  node/registry.json    the model registry (training/registry.py)
  node/vocabulary.json  formats (folder/formats.py), backends, runtimes and the
                        browsers (runtime/runtimes.py), and parity.json's layout
                        (folder/parity_record.py)

Node defines none of these names itself; a change on the Python side reaches
Node by regenerating the files."""

from __future__ import annotations

import json
from pathlib import Path

from .conversion.tflite_export import builtin_op_names
from .core.errors import BridgeError
from .core.paths import NODE_DIR
from .folder import parity_record
from .folder.formats import FORMATS
from .runtime.runtimes import (
    BACKENDS,
    BROWSER_RUNTIMES,
    BROWSERS,
    ENGINE_RUNTIMES,
    NODE_ENGINE_BACKENDS,
    NODE_ENGINE_RUNTIMES,
    PAGE_BACKENDS,
    RUNTIMES,
    XVFB,
)
from .training.registry import MODELS

REGISTRY_JSON = NODE_DIR / "registry.json"
VOCABULARY_JSON = NODE_DIR / "vocabulary.json"
GENERATED_BY = (
    "tfjs-bridge registry, from"
    " py/tfjs_bridge/{folder/formats,runtime/runtimes,folder/parity_record}.py: do not edit"
)


def registry_json() -> str:
    return json.dumps({n: s.to_json() for n, s in MODELS.items()}, indent=2) + "\n"


def vocabulary() -> dict:
    return {
        "generated_by": GENERATED_BY,
        "formats": {
            f.name: {"folder": f.folder, "entry": f.entry, "marker": f.marker, "made_by": f.made_by}
            for f in FORMATS.values()
        },
        "backends": {
            b.name: {"package": b.package, "optional": b.optional, "install": b.install}
            for b in BACKENDS.values()
        },
        # Worker backends with no tfjs in the process (LiteRT.js in Node), and their paths.
        "engine_backends": {
            b.name: {"package": b.package, "optional": b.optional, "install": b.install}
            for b in NODE_ENGINE_BACKENDS.values()
        },
        "engine_runtimes": {
            rt.name: {"backend": rt.backend, "format": rt.format, "description": rt.description}
            for rt in NODE_ENGINE_RUNTIMES.values()
        },
        "runtimes": {
            rt.name: {
                "backend": rt.backend,
                "format": rt.format,
                "description": rt.description,
                "default_rank": rt.default_rank,
            }
            for rt in RUNTIMES.values()
        },
        "browsers": {
            b.name: {
                "env": b.env,
                "executables": list(b.executables),
                "protocol": b.protocol,
                "backends": list(b.backends),
                "display_backends": list(b.display_backends),
                "install": b.install,
            }
            for b in BROWSERS.values()
        },
        "browser_backends": {
            bb.name: {"browser": bb.browser, "tfjs_backend": bb.tfjs_backend, "engine": bb.engine}
            for bb in PAGE_BACKENDS.values()
        },
        # The paths a browser page runs (tfjs's, LiteRT.js's, ONNX Runtime Web's):
        # what Node's per-target choice (lib/runtime/choose.js) picks among.
        "browser_runtimes": {
            rt.name: {"backend": rt.backend, "format": rt.format, "description": rt.description}
            for rt in {**BROWSER_RUNTIMES, **ENGINE_RUNTIMES}.values()
        },
        "xvfb": XVFB,
        # TFLite's builtin op names by code: how Node names a .tflite's nodes
        # (LiteRT.js's WebGPU delegate reports a failing node by its number).
        "tflite_builtin_ops": builtin_op_names(),
        "parity": {
            "file": parity_record.PARITY_FILE,
            "version": parity_record.SCHEMA_VERSION,
            "statuses": list(parity_record.STATUSES),
            "cold_start_key": parity_record.COLD_START_KEY,
        },
    }


def vocabulary_json() -> str:
    return json.dumps(vocabulary(), indent=2) + "\n"


def contract_files(node_dir: Path | None = None) -> dict[Path, str]:
    """Each generated file's path (in node/, or node_dir) and the text it must hold."""
    node_dir = NODE_DIR if node_dir is None else node_dir
    return {
        node_dir / REGISTRY_JSON.name: registry_json(),
        node_dir / VOCABULARY_JSON.name: vocabulary_json(),
    }


def write_contract(node_dir: Path | None = None) -> list[Path]:
    written = []
    for path, text in contract_files(node_dir).items():
        path.write_text(text)
        written.append(path)
    return written


def check_contract(node_dir: Path | None = None) -> None:
    """Raise, naming every file that is missing or differs from what Python defines."""
    stale = [
        str(path)
        for path, text in contract_files(node_dir).items()
        if not path.exists() or path.read_text() != text
    ]
    if stale:
        verb = "is" if len(stale) == 1 else "are"
        raise BridgeError(f"{', '.join(stale)} {verb} out of date: run `tfjs-bridge registry`")
