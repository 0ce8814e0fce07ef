"""Model folders under shared_models/ and their manifest.json.

Every write goes to a temporary sibling and is renamed into place when it is
complete, so an interrupted run leaves the previous good artifact readable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import BridgeError

MANIFEST = "manifest.json"
KERAS_H5 = "keras.h5"
SAVED_MODEL = "saved_model"
TFJS_LAYERS = "tfjs_layers"
TFJS_GRAPH = "tfjs_graph"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder, keyed by its path relative to folder."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def read_manifest(model_dir: Path) -> dict:
    path = model_dir / MANIFEST
    if not path.exists():
        raise BridgeError(f"{path}: no manifest: train the model first (`tfjs-bridge train`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BridgeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def staged_dir(target: Path):
    """Yields an empty temporary folder beside target; on success it replaces
    target (the old one is removed only after the new one is in place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
