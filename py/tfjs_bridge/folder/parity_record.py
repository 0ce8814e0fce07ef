"""parity.json, each model folder's record of which Node paths passed verify
and how fast they ran: its one writer and reader in Python. Node's path
choice reads it (the file name, version, statuses and cold-start key reach
Node through the generated node/vocabulary.json).

  {"version": 1, "updated": iso time,
   "results": {runtime: {"status", "reason", "samples", "max_abs"}},   # verify
   "speed": {runtime: {"<batch>": samples/s, "cold_start_s": s}}}      # bench

Each writer updates its own part and keeps the rest: verify and bench may
run at different times, on different runtimes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import BridgeError
from .artifacts import write_json_atomic

PARITY_FILE = "parity.json"
SCHEMA_VERSION = 1  # files from before versioning have the same layout
# A path's verdict, from a closed set (parity/verify.py decides which):
#   pass         it computes what the truth computes
#   mismatch     it loads and computes other numbers, or fails while running
#                (files written before these names say "fail")
#   unsupported  it cannot hold this model (the converter refused its format,
#                a layer it has no class for, a Lambda in the layers format)
#   refused      the inputs, or what the truth computes on them, cannot tell
#                paths apart: no verdict on the numbers
#   ill-conditioned  the truth itself moves beyond the tolerance under a one-ulp
#                input change: the outputs cannot tell; the result's step_check
#                (pass | mismatch | unavailable) says what was checked instead
#   skip         not run (its backend is not installed, or the folder lacks its format)
PASS, MISMATCH, UNSUPPORTED, REFUSED, SKIP = "pass", "mismatch", "unsupported", "refused", "skip"
ILL_CONDITIONED = "ill-conditioned"
STATUSES = (PASS, MISMATCH, UNSUPPORTED, REFUSED, ILL_CONDITIONED, SKIP)
COLD_START_KEY = "cold_start_s"  # beside the batch sizes: process start to first prediction


def read_parity(model_dir: Path) -> dict | None:
    """The folder's parity.json, or None when it has none."""
    path = model_dir / PARITY_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BridgeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    # Rewriting a newer layout as this one would lose what it added.
    if record.get("version", SCHEMA_VERSION) > SCHEMA_VERSION:
        raise BridgeError(
            f"{path}: version {record['version']}, newer than this tfjs-bridge's "
            f"{SCHEMA_VERSION}: update tfjs-bridge"
        )
    return record


def _write(model_dir: Path, record: dict) -> Path:
    path = model_dir / PARITY_FILE
    record = {"version": SCHEMA_VERSION, **record}  # first in the file, for a reader's eye
    record["version"] = SCHEMA_VERSION
    write_json_atomic(path, record)
    return path


def record_results(model_dir: Path, results: dict[str, dict]) -> Path:
    """Merge verify's results into the folder's record: runtime ->
    {"status", "reason", "samples", "max_abs"}. Node runs by default only
    paths recorded as passed."""
    old = read_parity(model_dir) or {}
    record = {
        **old,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": {**old.get("results", {}), **results},
    }
    return _write(model_dir, record)


def record_speed(model_dir: Path, speed: dict[str, dict]) -> Path | None:
    """Merge speed figures (route -> {"<batch>": samples/s, COLD_START_KEY: s})
    into the record of a folder that has one, for Node to pick the fastest
    verified path; None when the folder has no record."""
    record = read_parity(model_dir)
    if record is None:
        return None
    mine = record.setdefault("speed", {})
    for route, figures in speed.items():
        mine.setdefault(route, {}).update(figures)
    return _write(model_dir, record)


def forget_formats(model_dir: Path, formats: tuple[str, ...] | list[str]) -> Path | None:
    """Drop what the record says of the paths that run these formats (their
    results and speed figures): a new conversion makes them stale, and Node
    must not run a path as verified on the strength of the files it replaced.
    A path's name ends in its format ("tfjs-node/layers", "keras3 vs
    tfjs-node/layers"). None when the folder has no record."""
    record = read_parity(model_dir)
    if record is None:
        return None
    for part in ("results", "speed"):
        kept = record.get(part, {})
        record[part] = {k: v for k, v in kept.items() if k.rsplit("/", 1)[-1] not in formats}
    return _write(model_dir, record)
