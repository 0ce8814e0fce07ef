"""Any tfjs layers model -> a model folder whose truth is that tfjs model:
`tfjs-bridge import PATH OUT_DIR` (docs/import.md).

PATH is read and checked by reading.py; the folder gets:

  tfjs_layers/   the tfjs model, byte for byte: the reference (run in Node)
  keras.h5       the same model in tf-keras (tensorflowjs_converter, after
                 the topology says explicitly what tfjs's defaults mean:
                 translation.py)
  model.keras    the same model in Keras 3 (keras.saving.load_model reads
                 it: keras3_writer.py)
  manifest.json  reference {"kind": "tfjs"}, the I/O contract, sha256 of all

A folder node/train.js wrote (tfjs_layers/ + manifest.json), imported without
OUT_DIR, gets its keras.h5 in place instead (import_command)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

from ..conversion.keras_loader import TF_KERAS, load_keras
from ..core.errors import BridgeError, UsageError, first_line
from ..core.quiet_tf import native_stderr_hidden, op_determinism_off
from ..folder import artifacts
from ..folder.formats import LAYERS
from .keras3_writer import KERAS3_FILE, write_keras3
from .reading import TfjsModel, find_model_json, read_tfjs_model
from .translation import translate_topology

REFERENCE_KIND = "tfjs"  # manifest["reference"]["kind"] of an imported folder
PYTHON_MODELS = {"tf-keras": artifacts.KERAS_H5, "keras3": KERAS3_FILE}  # verify's paths

# What `tensorflowjs_converter --input_format tfjs_layers_model --output_format keras` runs.
CONVERTER_FUNCTION = (
    "tensorflowjs.converters.converter.dispatch_tensorflowjs_to_keras_h5_conversion"
)


def default_name(json_path: Path) -> str:
    """The model's name when none is given: its file's stem, or its folder's
    name for a model.json."""
    stem = json_path.stem
    return json_path.parent.resolve().name if stem == "model" else stem


def _refuse_target(source: TfjsModel, out_dir: Path) -> None:
    """OUT_DIR is swapped in whole: it must not hold the model being imported,
    nor be a folder that is not a model folder (it would be replaced)."""
    out = out_dir.resolve()
    src = source.folder.resolve()
    if out == src or out in src.parents:
        raise UsageError(f"{out_dir}: holds the model being imported: choose another OUT_DIR")
    if out_dir.exists() and (
        not out_dir.is_dir()
        or (any(out_dir.iterdir()) and not (out_dir / artifacts.MANIFEST).exists())
    ):
        raise UsageError(f"{out_dir}: exists and is not a model folder: refusing to replace it")


def _converter():
    """tensorflowjs_converter's own module, imported in this process. It
    imports tensorflow_decision_forests, whose welcome banner goes to stderr
    unless this variable is set."""
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    from tensorflowjs.converters import converter

    return converter


def _convert_to_h5(model: TfjsModel, topology: dict, target: Path) -> None:
    """keras.h5 by the function `tensorflowjs_converter --input_format
    tfjs_layers_model --output_format keras` runs (called here rather than
    through the command: that costs a TensorFlow start-up per model), on
    model.json with the translated topology and its shards linked beside it."""
    with tempfile.TemporaryDirectory(prefix="tfjs-bridge-import-") as tmp:
        folder = Path(tmp)
        for rel in model.shards:
            link = folder / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                os.symlink((model.folder / rel).resolve(), link)
        translated = {**model.model_json, "modelTopology": topology}
        (folder / "model.json").write_text(json.dumps(translated))
        failure = None
        # (its v1 Session logs through absl on fd 2; the error, if any, is ours to say)
        with native_stderr_hidden(), warnings.catch_warnings(), op_determinism_off():
            warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": it is what we want
            try:
                _converter().dispatch_tensorflowjs_to_keras_h5_conversion(
                    str(folder / "model.json"), str(target)
                )
            except Exception as exc:
                failure = first_line(exc)
    if failure:
        raise BridgeError(
            f"{model.json_path}: tensorflowjs_converter (tfjs_layers_model -> keras) "
            f"failed: {failure}"
        )


def import_tfjs(path: Path, out_dir: Path, name: str | None = None) -> dict:
    """Write out_dir (atomically) from the tfjs layers model at path; returns the manifest."""
    from ..conversion.export import is_classifier
    from ..core.quiet_tf import import_tensorflow
    from ..core.versions import python_versions
    from ..folder.signature import read_signature

    model = read_tfjs_model(path)
    _refuse_target(model, out_dir)
    topology, notes = translate_topology(model.model_json["modelTopology"])
    name = name or default_name(model.json_path)
    import_tensorflow()

    with artifacts.model_lock(out_dir), artifacts.staged_dir(out_dir) as staging:
        layers_dir = staging / LAYERS.folder
        layers_dir.mkdir()
        shutil.copyfile(model.json_path, layers_dir / LAYERS.entry)  # the truth, as it was
        for rel in model.shards:
            (layers_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model.folder / rel, layers_dir / rel)
        h5 = staging / artifacts.KERAS_H5
        _convert_to_h5(model, topology, h5)
        keras_model = load_keras(h5, TF_KERAS)
        signature = read_signature(keras_model)
        notes += write_keras3(h5, staging / KERAS3_FILE)
        manifest = {
            "model": name,
            "spec": {
                "name": name,
                "input_shape": list(signature.inputs[0].shape),
                "task": "classification" if is_classifier(keras_model) else "unknown",
                "data": None,
                "atol": 1e-5,
                "rtol": 1e-5,
            },
            "signature": signature.to_json(),
            "reference": {"kind": REFERENCE_KIND, "file": f"{LAYERS.folder}/{LAYERS.entry}"},
            "python_models": PYTHON_MODELS,
            "source": {
                "path": str(model.json_path.resolve()),
                "kind": "tfjs_layers",
                "generated_by": model.model_json.get("generatedBy"),
                "sha256": artifacts.sha256(model.json_path),
            },
            "converted_by": {
                "tensorflowjs": importlib.metadata.version("tensorflowjs"),
                "function": CONVERTER_FUNCTION,
            },
            "notes": notes,
            "versions": python_versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": artifacts.file_hashes(staging),
        }
        artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
    return manifest


def import_command(
    path: Path, out_dir: Path | None, name: str | None, models_root: Path
) -> list[str]:
    """`tfjs-bridge import PATH [OUT_DIR]`; returns the lines to print.

    A folder node/train.js wrote (tfjs_layers/ + manifest.json), given
    without OUT_DIR, gets its keras.h5 in place; any other tfjs layers model
    is imported to OUT_DIR [default: models_root/NAME, NAME from PATH]."""
    from ..conversion.convert import import_layers_model

    trained_in_node = (path / artifacts.MANIFEST).is_file() and LAYERS.path(path).is_file()
    if out_dir is None and trained_in_node:
        return [f"wrote {import_layers_model(path)}"]
    if out_dir is None:
        out_dir = models_root / (name or default_name(find_model_json(path)))
    manifest = import_tfjs(path, out_dir, name)
    return [
        f"{manifest['model']}: tfjs layers model -> {out_dir} (keras.h5, model.keras)",
        *(f"note: {note}" for note in manifest["notes"]),
    ]
