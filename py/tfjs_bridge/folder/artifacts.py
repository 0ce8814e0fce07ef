"""Model folders under shared_models/ and their manifest.json: how they are
written, locked and checked. The folders of the Node formats inside them are
formats.py's.

Every write goes to a temporary sibling and is renamed into place when it is
complete, so an interrupted run leaves the previous good artifact readable."""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import BridgeError

MANIFEST = "manifest.json"
KERAS_H5 = "keras.h5"  # what the layers and onnx conversions read; no Node format


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


def recorded_hash(manifest: dict, rel: str) -> str | None:
    """The sha256 manifest.json recorded for a file (a path relative to the folder)."""
    for conversion in (manifest.get("conversions") or {}).values():
        prefix = f"{conversion.get('output')}/"
        if rel.startswith(prefix) and rel[len(prefix) :] in conversion.get("files", {}):
            return conversion["files"][rel[len(prefix) :]]
    return (manifest.get("files") or {}).get(rel)


def check_integrity(model_dir: Path, rels: list[str], manifest: dict | None = None) -> None:
    """Refuse files whose sha256 differs from the manifest's record (or that
    have none): corrupted or tampered with, they are never loaded."""
    manifest = manifest if manifest is not None else read_manifest(model_dir)
    for rel in rels:
        path = model_dir / rel
        expected = recorded_hash(manifest, rel)
        if expected is None:
            raise BridgeError(f"{path}: manifest.json has no sha256 record for it")
        if not path.exists():
            raise BridgeError(f"{path}: missing (listed in manifest.json)")
        if sha256(path) != expected:
            raise BridgeError(
                f"{path}: sha256 differs from manifest.json (corrupted or tampered with): "
                "refusing to load"
            )


def check_folder_integrity(model_dir: Path, folder: str, manifest: dict | None = None) -> None:
    """check_integrity for every file the manifest lists under folder/."""
    manifest = manifest if manifest is not None else read_manifest(model_dir)
    files = manifest.get("files") or {}
    rels = [rel for rel in files if rel.startswith(f"{folder}/")]
    if not rels:
        raise BridgeError(f"{model_dir / folder}: manifest.json has no sha256 record for it")
    check_integrity(model_dir, rels, manifest)


def write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE):
    at every instant, each name holds a complete folder."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"renameat2 exchange failed: {os.strerror(err)}", str(a), str(b))


def _staging_name(target: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))


def _swap_in(staging: Path, target: Path) -> None:
    if target.exists():
        exchange(staging, target)  # staging now holds the old folder
        shutil.rmtree(staging, ignore_errors=True)
    else:
        os.replace(staging, target)


def clean_stale_staging(parent: Path, name: str) -> None:
    """Remove staging folders left by runs that were killed (their names say whose)."""
    for stale in parent.glob(f".{name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def staged_dir(target: Path, copy_of_target: bool = False):
    """Yields a temporary folder beside target (empty, or with copy_of_target
    a copy of target made of hard links: cheap, and target's files are never
    written in place); on success it takes target's place in one atomic
    exchange. Killed at any moment, target is the old folder or the new one,
    never missing or half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_name(target)
    try:
        if copy_of_target:
            staging.rmdir()
            shutil.copytree(target, staging, copy_function=os.link, symlinks=True)
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, target)


def staged_update(target: Path):
    """staged_dir starting from a (hard-linked) copy of target."""
    return staged_dir(target, copy_of_target=True)


def _lock_holder(f, patience: float = 1.0) -> str:
    """Who holds the lock, as it wrote itself into the file. The holder writes
    its pid just after taking the lock, so give it a moment to do so."""
    deadline = time.monotonic() + patience
    while True:
        f.seek(0)
        holder = f.read().strip()
        if holder or time.monotonic() > deadline:
            return holder or "another process"
        time.sleep(0.05)


@contextmanager
def model_lock(target: Path, log=None):
    """One writer per model folder at a time (train, convert, export). A second
    run waits, saying so, for up to TFJS_BRIDGE_LOCK_TIMEOUT seconds (600)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f".{target.name}.lock"
    limit = float(os.environ.get("TFJS_BRIDGE_LOCK_TIMEOUT", "600"))
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(f)
            if log:
                log(f"waiting for {holder} to finish with {target}")
            deadline = time.monotonic() + limit
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise BridgeError(
                            f"{target}: still locked by {holder} after {limit:g} s "
                            f"(TFJS_BRIDGE_LOCK_TIMEOUT); remove {path} if no such run is alive"
                        ) from None
                    time.sleep(0.2)
        f.seek(0)
        f.truncate()
        f.write(f"tfjs-bridge pid {os.getpid()}")
        f.flush()
        try:
            clean_stale_staging(target.parent, target.name)
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
