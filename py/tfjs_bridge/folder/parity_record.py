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
from typing import TYPE_CHECKING

from ..core.errors import BridgeError
from .artifacts import write_json_atomic

if TYPE_CHECKING:
    from ..bench.routes import BenchReport
    from ..parity.truth import Subject
    from ..parity.verify import VerifyReport

PARITY_FILE = "parity.json"
SCHEMA_VERSION = 1  # files from before versioning have the same layout
PASS, FAIL, SKIP = "pass", "fail", "skip"
STATUSES = (PASS, FAIL, SKIP)
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


def record_parity(report: VerifyReport, subjects: list[Subject]) -> list[Path]:
    """Write each model folder's verify results: which Node paths passed, on
    how many samples. Node runs by default only paths recorded as passed."""
    written = []
    for subject in subjects:
        mine = [r for r in report.results if r.model == subject.name]
        if not mine:
            continue
        old = read_parity(subject.model_dir) or {}
        results = old.get("results", {})
        for r in mine:
            results[r.runtime] = {
                "status": r.status,
                "reason": r.reason,
                "samples": r.figures.get("samples"),
                "max_abs": r.figures.get("max_abs"),
            }
        record = {
            **old,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "results": results,
        }
        written.append(_write(subject.model_dir, record))
    return written


def record_speed(report: BenchReport, subjects: list[Subject]) -> list[Path]:
    """Samples/s per Node path and batch, and cold starts, into the parity.json
    of folders that have one, for Node to pick the fastest verified path."""
    written = []
    for subject in subjects:
        record = read_parity(subject.model_dir)
        if record is None:
            continue
        speed = record.setdefault("speed", {})
        for t in report.timings:
            if t.model == subject.name and not t.route.startswith("python/"):
                speed.setdefault(t.route, {})[str(t.batch)] = t.throughput
        for (model, route), figures in report.cold_start_by_path.items():
            if model == subject.name:
                speed.setdefault(route, {})[COLD_START_KEY] = figures["median_s"]
        written.append(_write(subject.model_dir, record))
    return written
