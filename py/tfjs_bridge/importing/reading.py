"""Reading a tfjs layers model safely: the model.json and its weight shards,
checked before any weight is read.

PATH is a model.json (any name: `downloads://my-model` gives my-model.json)
or the folder holding one, as tfjs's model.save writes it in Node
(model.json + weights.bin) or in a browser (model.json + model.weights.bin),
with any number of shards. It is checked as every loader checks model files
(node/lib/io/modelfiles.js): sizes bounded, JSON well formed, weight paths
inside the folder, declared bytes = shard bytes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BridgeError, UsageError, first_line
from ..folder.formats import DTYPE_BYTES, LAYERS

# Bounds checked before anything is parsed or allocated; node/lib/io/modelfiles.js
# has the same two (tests/test_import.py checks that they agree).
MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024
MAX_WEIGHT_BYTES = 2 * 1024 * 1024 * 1024


@dataclass
class TfjsModel:
    """A tfjs layers model as read_tfjs_model found it (checked, not loaded)."""

    json_path: Path
    model_json: dict
    shards: list[str]  # the weight paths as model.json writes them, in order

    @property
    def folder(self) -> Path:
        return self.json_path.parent

    @property
    def topology(self) -> dict:
        topology = self.model_json["modelTopology"]
        return topology.get("model_config", topology)


def find_model_json(path: Path) -> Path:
    """PATH itself (a .json file), or the model.json in the folder PATH."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_dir():
        candidate = path / LAYERS.entry
        if candidate.is_file():
            return candidate
        found = sorted(p.name for p in path.glob("*.json"))
        hint = f" (it has {', '.join(found)}: give the one to import)" if found else ""
        raise UsageError(f"{path}: no model.json in this folder{hint}")
    return path


def _inside(folder: Path, rel: str, where: Path) -> Path:
    """folder/rel, refused unless it stays inside folder (symlinks resolved)."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel):
        raise BridgeError(f"{where}: weight path {rel!r} points outside the model folder")
    path = folder / rel
    root = folder.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise BridgeError(f"{where}: weight path {rel!r} points outside the model folder {root}")
    return path


def _declared_bytes(spec, where: Path) -> int:
    shape = spec.get("shape") if isinstance(spec, dict) else None
    dtype = spec.get("dtype") if isinstance(spec, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else spec
    if (
        dtype not in DTYPE_BYTES
        or not isinstance(shape, list)
        or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape)
    ):
        raise BridgeError(
            f"{where}: weight {name!r} has an impossible shape {shape} or dtype {dtype}"
        )
    if spec.get("quantization"):
        raise BridgeError(f"{where}: quantized weight {name!r} is not supported")
    count = 1
    for d in shape:
        count *= d
        if count * DTYPE_BYTES[dtype] > MAX_WEIGHT_BYTES:
            raise BridgeError(f"{where}: weight {name!r} declares more than 2 GiB")
    return count * DTYPE_BYTES[dtype]


def read_tfjs_model(path: Path) -> TfjsModel:
    """The model.json at (or in) path, checked with its shards before any
    weight is read: every refusal is one BridgeError naming the file."""
    json_path = find_model_json(path)
    size = json_path.stat().st_size
    if size > MAX_MODEL_JSON_BYTES:
        raise BridgeError(
            f"{json_path}: {size} bytes, more than a model.json may hold "
            f"({MAX_MODEL_JSON_BYTES >> 20} MiB)"
        )
    try:
        model_json = json.loads(json_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BridgeError(f"{json_path}: not a readable model.json ({first_line(exc)})") from None
    if (
        not isinstance(model_json, dict)
        or not isinstance(model_json.get("modelTopology"), dict)
        or not isinstance(model_json.get("weightsManifest"), list)
    ):
        raise BridgeError(
            f"{json_path}: not a tfjs model.json (needs modelTopology and weightsManifest)"
        )
    fmt = model_json.get("format")
    topology = model_json["modelTopology"]
    if fmt == "graph-model" or "node" in topology:
        raise UsageError(
            f"{json_path}: a tfjs graph model (tf.loadGraphModel): import takes layers models"
        )
    if fmt not in (None, "layers-model"):
        raise BridgeError(f"{json_path}: format {fmt!r}, not a tfjs layers model")
    folder = json_path.parent
    shards: list[str] = []
    declared = 0
    for group in model_json["weightsManifest"]:
        if (
            not isinstance(group, dict)
            or not isinstance(group.get("paths"), list)
            or not isinstance(group.get("weights"), list)
        ):
            raise BridgeError(f"{json_path}: a weightsManifest entry lacks paths or weights")
        for rel in group["paths"]:
            _inside(folder, rel, json_path)
            shards.append(rel)
        for spec in group["weights"]:
            declared += _declared_bytes(spec, json_path)
    if declared > MAX_WEIGHT_BYTES:
        raise BridgeError(f"{json_path}: the weights declare more than 2 GiB")
    held = 0
    for rel in shards:
        shard = folder / rel
        if not shard.is_file():
            raise BridgeError(f"{shard}: weight shard missing")
        held += shard.stat().st_size
    if held != declared:
        raise BridgeError(
            f"{json_path}: the weights declare {declared} bytes but the shards hold {held} "
            "(truncated or mismatched)"
        )
    return TfjsModel(json_path, model_json, shards)
