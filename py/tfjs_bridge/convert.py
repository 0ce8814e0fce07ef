"""Run tensorflowjs_converter on a trained model folder.

layers: keras.h5 -> tfjs_layers/ (tf.loadLayersModel)
graph:  saved_model/ -> tfjs_graph/ (tf.loadGraphModel)
Each output is written to a temporary folder and renamed into place; the
converter's version and the sha256 of every file it wrote go to manifest.json."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from . import artifacts
from .errors import BridgeError, last_line

FORMATS = ("layers", "graph")


def converter_path() -> Path:
    path = Path(sys.executable).with_name("tensorflowjs_converter")
    if not path.exists():
        raise BridgeError(f"{path}: tensorflowjs_converter is not installed: run `make setup`")
    return path


def run_converter(args: list[str]) -> str:
    cmd = [str(converter_path()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BridgeError(f"tensorflowjs_converter failed: {last_line(proc.stderr)}")
    return proc.stdout


def converter_version() -> str:
    for line in run_converter(["--version"]).splitlines():
        if line.strip().startswith("tensorflowjs "):
            return line.split()[-1]
    raise BridgeError("tensorflowjs_converter --version printed no version")


def converter_args(fmt: str, model_dir: Path, out_dir: Path) -> list[str]:
    if fmt == "layers":
        return [
            "--input_format=keras",
            "--output_format=tfjs_layers_model",
            str(model_dir / artifacts.KERAS_H5),
            str(out_dir),
        ]
    if fmt == "graph":
        return [
            "--input_format=tf_saved_model",
            "--output_format=tfjs_graph_model",
            "--signature_name=serving_default",
            "--saved_model_tags=serve",
            str(model_dir / artifacts.SAVED_MODEL),
            str(out_dir),
        ]
    raise BridgeError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")


OUTPUT_DIRS = {"layers": artifacts.TFJS_LAYERS, "graph": artifacts.TFJS_GRAPH}


def convert(model_dir: Path, formats: tuple[str, ...] = FORMATS) -> dict:
    """Convert one trained model folder to each format; returns the manifest."""
    manifest = artifacts.read_manifest(model_dir)
    # The installed package's version: starting the converter just to ask
    # costs ~5 s per call, and the conversion itself fails loudly if it is broken.
    version = importlib.metadata.version("tensorflowjs")
    conversions = manifest.setdefault("conversions", {})
    for fmt in formats:
        target = model_dir / OUTPUT_DIRS[fmt]
        with artifacts.staged_dir(target) as staging:
            args = converter_args(fmt, model_dir, staging)
            run_converter(args)
            conversions[fmt] = {
                "converter": "tensorflowjs_converter",
                "converter_version": version,
                "args": args[:-2],
                "output": OUTPUT_DIRS[fmt],
                "files": artifacts.file_hashes(staging),
            }
    artifacts.write_json_atomic(model_dir / artifacts.MANIFEST, manifest)
    return manifest


def import_layers_model(model_dir: Path) -> Path:
    """tfjs layers model (e.g. trained by node/train.js) -> model_dir/keras.h5."""
    model_json = model_dir / artifacts.TFJS_LAYERS / "model.json"
    if not model_json.exists():
        raise BridgeError(f"{model_json}: not found: train with `node node/train.js` first")
    target = model_dir / artifacts.KERAS_H5
    staging = model_dir / f".{artifacts.KERAS_H5}.tmp"
    run_converter(
        [
            "--input_format=tfjs_layers_model",
            "--output_format=keras",
            str(model_json),
            str(staging),
        ]
    )
    staging.replace(target)
    return target
