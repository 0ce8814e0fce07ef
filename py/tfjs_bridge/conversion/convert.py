"""Run tensorflowjs_converter on a trained model folder.

layers: keras.h5 -> tfjs_layers/ (tf.loadLayersModel)
graph:  saved_model/ -> tfjs_graph/ (tf.loadGraphModel)
onnx:   keras.h5 -> onnx/ (onnx_export.py; optional, `make onnx`)
tflite: saved_model/ -> tflite/ (tflite_export.py; TFLite builtin ops only)
(the folders are folder/formats.py's). Each output is written to a temporary folder
and renamed into place; the converter's version and the sha256 of every file
it wrote go to manifest.json."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.errors import BridgeError, UsageError, last_line
from ..folder import artifacts, parity_record
from ..folder.formats import FORMATS, LAYERS, SAVED_MODEL
from . import quantization
from .converter_process import ConverterError, active_process, converter_env, shared_converter

DEFAULT_FORMATS = ("layers", "graph")  # `convert --format all`: onnx is optional
# What `convert` makes (train makes the SavedModels).
CONVERTIBLE = (*DEFAULT_FORMATS, "onnx", "tflite")
FORMAT_HELP = (
    "layers: keras.h5 -> tfjs_layers/; graph: saved_model/ -> tfjs_graph/; "
    "onnx: keras.h5 -> onnx/ with tf2onnx (needs `make onnx`; not part of all); "
    "tflite: saved_model/ -> tflite/, TFLite builtin ops only (not part of all)."
)
STATIC_BATCH_HELP = (
    "With --format tflite: also write the .tflite with its batch fixed at each of these "
    "sizes (tflite/model_bB.tflite), which LiteRT.js's WebGPU delegate needs "
    "(chromium-litert-webgpu; docs/runtimes.md). Example: 1,32."
)


def parse_static_batches(text: str | None) -> tuple[int, ...]:
    """'1,32' -> (1, 32); UsageError for anything but positive integers."""
    if not text:
        return ()
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        sizes = ()
    if not sizes or sizes[0] < 1:
        raise UsageError(f"--static-batch takes batch sizes >= 1 such as 1,32, not {text!r}")
    return sizes


def converter_path() -> Path:
    path = Path(sys.executable).with_name("tensorflowjs_converter")
    if not path.exists():
        raise BridgeError(f"{path}: tensorflowjs_converter is not installed: run `make setup`")
    return path


def converter_reason(stderr: str) -> str:
    """The converter's reason in one line: its last exception line and the
    lines after it ("ValueError: Unsupported Ops in the model before
    optimization" is followed by the ops' names), or its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", lines[i]):
            return ": ".join(lines[i:])[:500]
    return last_line(stderr)


def run_converter(args: list[str]) -> str:
    process = active_process()
    if process is not None:  # inside shared_converter(): no start-up per call
        return process.run(args)
    cmd = [str(converter_path()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=converter_env())
    if proc.returncode != 0:
        raise ConverterError(f"tensorflowjs_converter failed: {converter_reason(proc.stderr)}")
    return proc.stdout


def converter_version() -> str:
    for line in run_converter(["--version"]).splitlines():
        if line.strip().startswith("tensorflowjs "):
            return line.split()[-1]
    raise BridgeError("tensorflowjs_converter --version printed no version")


def converter_args(
    fmt: str, model_dir: Path, out_dir: Path, quantize: str | None = None
) -> list[str]:
    # The converter's option for every weight (given without node names).
    quantized = [quantization.converter_flag(quantize)] if quantize else []
    if fmt == "layers":
        return [
            "--input_format=keras",
            "--output_format=tfjs_layers_model",
            *quantized,
            str(model_dir / artifacts.KERAS_H5),
            str(out_dir),
        ]
    if fmt == "graph":
        return [
            "--input_format=tf_saved_model",
            "--output_format=tfjs_graph_model",
            "--signature_name=serving_default",
            "--saved_model_tags=serve",
            *quantized,
            str(model_dir / SAVED_MODEL.folder),
            str(out_dir),
        ]
    raise BridgeError(f"unknown format '{fmt}' (known: {', '.join(DEFAULT_FORMATS)})")


def _named(value):
    if isinstance(value, dict):
        if value.get("class_name") == "function" and isinstance(value.get("config"), str):
            return value["config"]
        return {k: _named(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_named(v) for v in value]
    return value


def name_custom_activations(model_json: Path) -> None:
    """tf-keras writes a custom activation function (keras3_hard_sigmoid) as
    {"class_name": "function", "config": NAME}; tfjs looks activations up by
    name, so the converted model.json gets the bare NAME."""
    model = json.loads(model_json.read_text())
    model["modelTopology"] = _named(model["modelTopology"])
    artifacts.write_json_atomic(model_json, model)


def _float32_policies(value, key: str | None = None):
    if isinstance(value, dict):
        if key == "dtype" and value.get("class_name") in ("Policy", "DTypePolicy"):
            name = value.get("config", {}).get("name", "")
            return "float32" if name.startswith("mixed_") else name
        return {k: _float32_policies(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_policies(v, key) for v in value]
    return value


def compute_in_float32(model_json: Path) -> None:
    """tf-keras writes a mixed-precision layer's dtype as a Policy object,
    which tfjs-layers cannot read ("Unknown data type [object Object]").
    tfjs computes in float32 only, and a mixed policy keeps its weights in
    float32: the layer becomes a float32 one with the same weights. verify
    judges it at the precision Keras computes in (parity/truth.py)."""
    model = json.loads(model_json.read_text())
    model["modelTopology"] = _float32_policies(model["modelTopology"])
    artifacts.write_json_atomic(model_json, model)


def _node_index(name: str) -> int:
    """Identity -> 0, Identity_2:0 -> 2: the order of a graph's output nodes."""
    node = name.split(":")[0]
    tail = node.rsplit("_", 1)[-1]
    return int(tail) + 1 if "_" in node and tail.isdigit() else 0


def name_graph_outputs(model_json: Path, keys: list[str]) -> None:
    """The converter keeps a serving signature's output keys only in part:
    keys such as lstm_3_1 come out as the tensor names Identity_1:0. The
    SavedModel's outputs are its sorted keys, returned in that order through
    Identity, Identity_1, ...; the signature gets its keys back from that order."""
    model = json.loads(model_json.read_text())
    outputs = (model.get("signature") or {}).get("outputs") or {}
    if sorted(outputs) == sorted(keys) or len(outputs) != len(keys):
        return
    ordered = sorted(outputs.values(), key=lambda spec: _node_index(spec["name"]))
    model["signature"]["outputs"] = dict(zip(sorted(keys), ordered, strict=True))
    artifacts.write_json_atomic(model_json, model)


def name_graph_inputs(model_json: Path, keys: dict[str, str]) -> None:
    """The converter finds an input's signature key by its shape and dtype;
    two inputs alike (a question pair: left and right) match both keys, and
    it falls back to the tensor's name (left:0), a key no one feeds. `keys`
    maps each serving input's tensor name to its key."""
    model = json.loads(model_json.read_text())
    inputs = (model.get("signature") or {}).get("inputs") or {}
    if len(inputs) == 1 and len(keys) == 1:  # one input: its key, whatever its tensor's name
        renamed = {next(iter(keys.values())): spec for spec in inputs.values()}
    else:
        renamed = {keys.get(spec["name"], key): spec for key, spec in inputs.items()}
    if list(renamed) == list(inputs) or len(renamed) != len(inputs):
        return
    model["signature"]["inputs"] = renamed
    artifacts.write_json_atomic(model_json, model)


def serving_signature_def(saved_model: Path):
    """The `serving_default` SignatureDef of saved_model/saved_model.pb (its
    "serve" graph), read without loading the model: loading an unrolled one
    takes 5-10 s, 42 s for spam's 200 steps."""
    from ..core.quiet_tf import import_tensorflow

    import_tensorflow()  # quietly, before any of its modules
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model / "saved_model.pb").read_bytes())
    graphs = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags]
    return graphs[0].signature_def["serving_default"]


def serving_keys(saved_model: Path) -> tuple[dict[str, str], list[str]]:
    """The serving signature's inputs (tensor name -> key) and output keys,
    from its SignatureDef. Only several inputs need the model loaded: the
    converter's tensor names are the function's, not the SignatureDef's
    (which one input does not need: name_graph_inputs)."""
    from ..core.quiet_tf import import_tensorflow

    signature = serving_signature_def(saved_model)
    if len(signature.inputs) <= 1:
        return {info.name: key for key, info in signature.inputs.items()}, sorted(signature.outputs)

    tf = import_tensorflow()
    serve = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    # the function's first inputs are the signature's, in nest's (sorted-key) order
    keys = sorted(serve.structured_input_signature[1])
    inputs = {t.name: key for t, key in zip(serve.inputs, keys)}  # noqa: B905 (captures follow)
    return inputs, list(serve.structured_outputs)


def convert(
    model_dir: Path,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
    log=None,
    quantize: str | None = None,
    static_batches: tuple[int, ...] = (),
) -> dict:
    """Convert one trained model folder to each format (its weights quantized
    to `quantize`, quantization.py; the tflite also at each of
    `static_batches`, tflite_export.py); returns the manifest.

    The whole folder is updated in one atomic exchange (a staged copy made of
    hard links), under the folder's lock: killed at any moment, the folder
    and its manifest stay as they were or are complete."""
    with artifacts.model_lock(model_dir, log):
        artifacts.read_manifest(model_dir)  # fail before staging anything
        with artifacts.staged_update(model_dir) as staging:
            manifest = convert_in_place(staging, formats, quantize, static_batches)
    return manifest


def convert_models(specs, formats: tuple[str, ...], root: Path, quantize: str | None = None,
                   log: Callable[[str], None] | None = None,
                   static_batches: tuple[int, ...] = ()) -> Iterator[str]:  # fmt: skip
    """`convert` on registry models' folders under root: a line per format made.
    The converter starts once for all of them (about 7 CPU-s a start)."""
    with shared_converter():
        for spec in specs:
            manifest = convert(root / spec.name, formats, log=log, quantize=quantize,
                               static_batches=static_batches)  # fmt: skip
            for f in formats:
                done = manifest["conversions"][f]
                where = root / spec.name / done["output"]
                yield f"{spec.name}: {f} -> {where} ({conversion_summary(done)})"


def conversion_summary(done: dict) -> str:
    """One of the manifest's conversions as `convert` reports it: how many
    files, by which tool, and for quantized weights their size before and after."""
    size = ""
    if done.get("quantize"):
        size = (f", {done['quantize']} weights: {done['weight_bytes']:,} bytes, "
                f"{done['float32_weight_bytes']:,} as float32")  # fmt: skip
    return f"{len(done['files'])} files, {done['converter']} {done['converter_version']}{size}"


def convert_in_place(
    model_dir: Path,
    formats: tuple[str, ...],
    quantize: str | None = None,
    static_batches: tuple[int, ...] = (),
) -> dict:
    """Convert into model_dir itself (a folder no one else sees yet)."""
    manifest = artifacts.read_manifest(model_dir)
    if quantize and "onnx" in formats:
        raise UsageError("--quantize applies to the tfjs formats and tflite, not to onnx")
    if static_batches and "tflite" not in formats:
        raise UsageError("--static-batch applies to --format tflite only")
    # Convert only what was trained: inputs whose sha256 no longer matches are refused.
    sources = {"layers": artifacts.KERAS_H5, "onnx": artifacts.KERAS_H5}
    for fmt in formats:
        if fmt in sources:
            artifacts.check_integrity(model_dir, [sources[fmt]], manifest)
        else:
            artifacts.check_folder_integrity(model_dir, SAVED_MODEL.folder, manifest)
    # The installed package's version: starting the converter just to ask
    # costs ~5 s per call, and the conversion itself fails loudly if it is broken.
    version = importlib.metadata.version("tensorflowjs")
    conversions = manifest.setdefault("conversions", {})
    for fmt in formats:
        output = FORMATS[fmt].folder
        out = model_dir / output
        shutil.rmtree(out, ignore_errors=True)  # links to the old files: the original keeps them
        out.mkdir()
        if fmt == "onnx":
            from .onnx_export import export_onnx

            done = export_onnx(model_dir, out)
            conversions[fmt] = {**done, "output": output, "files": artifacts.file_hashes(out)}
            continue
        if fmt == "tflite":
            from .tflite_export import export_tflite

            done = export_tflite(model_dir, out, quantize, static_batches)
            conversions[fmt] = {**done, "output": output, "files": artifacts.file_hashes(out)}
            continue
        args = converter_args(fmt, model_dir, out, quantize)
        run_converter(args)
        if fmt == "layers":
            name_custom_activations(out / LAYERS.entry)
            compute_in_float32(out / LAYERS.entry)
        if fmt == "graph":
            inputs, outputs = serving_keys(model_dir / SAVED_MODEL.folder)
            name_graph_inputs(out / FORMATS["graph"].entry, inputs)
            name_graph_outputs(out / FORMATS["graph"].entry, outputs)
        conversions[fmt] = {
            "converter": "tensorflowjs_converter",
            "converter_version": version,
            "args": args[:-2],
            "output": output,
            "quantize": quantize,
            **quantization.weight_sizes(out / FORMATS[fmt].entry),
            "files": artifacts.file_hashes(out),
        }
    artifacts.write_json_atomic(model_dir / artifacts.MANIFEST, manifest)
    parity_record.forget_formats(model_dir, formats)  # verified on the files just replaced
    return manifest


def import_layers_model(model_dir: Path) -> Path:
    """tfjs layers model (e.g. trained by node/train.js) -> model_dir/keras.h5,
    recorded in the manifest; the folder is updated in one atomic exchange."""
    model_json = LAYERS.path(model_dir)
    if not model_json.exists():
        raise BridgeError(f"{model_json}: not found: train with `node node/train.js` first")
    with artifacts.model_lock(model_dir):
        manifest = artifacts.read_manifest(model_dir)
        artifacts.check_integrity(model_dir, [f"{LAYERS.folder}/{LAYERS.entry}"], manifest)
        with artifacts.staged_update(model_dir) as staging:
            target = staging / artifacts.KERAS_H5
            target.unlink(missing_ok=True)
            run_converter(
                [
                    "--input_format=tfjs_layers_model",
                    "--output_format=keras",
                    str(LAYERS.path(staging)),
                    str(target),
                ]
            )
            manifest.setdefault("files", {})[artifacts.KERAS_H5] = artifacts.sha256(target)
            artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
    return model_dir / artifacts.KERAS_H5
