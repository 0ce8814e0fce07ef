"""Start Node.js scripts from Python and turn their failures into errors.

Every script under ``node/`` prints machine-readable results on stdout and,
when it fails, one line starting with ``error:`` on stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ..core.errors import BridgeError, NodeError, last_line
from ..core.paths import NODE_DIR, PROJECT_ROOT

DEFAULT_TIMEOUT_S = float(os.environ.get("TFJS_BRIDGE_NODE_TIMEOUT", "600"))


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise BridgeError(
            "Node.js was not found on PATH: install Node.js (20, 22 or 24), then run `make setup`"
        )
    return node


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _reason(stderr: str) -> str:
    """The script's own ``error:`` line if it printed one, else the last line."""
    for line in reversed(stderr.splitlines()):
        if line.strip().startswith("error:"):
            return line.strip()[len("error:") :].strip()
    return last_line(stderr)


def run_node(script: str | Path, *args: str, timeout: float | None = None) -> str:
    """Run ``node node/<script> args...`` and return its stdout.

    Raises NodeError (with Node's stderr) on a non-zero exit or a timeout."""
    path = Path(script) if Path(script).is_absolute() else NODE_DIR / script
    cmd = [node_executable(), str(path), *map(str, args)]
    limit = DEFAULT_TIMEOUT_S if timeout is None else timeout
    try:
        proc = subprocess.run(
            cmd, cwd=PROJECT_ROOT, env=node_env(), capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise NodeError(f"node {path.name} timed out after {limit:g} s", stderr) from None
    if proc.returncode != 0:
        raise NodeError(
            f"node {path.name} failed (exit {proc.returncode}): {_reason(proc.stderr)}", proc.stderr
        )
    return proc.stdout


def run_node_json(script: str | Path, *args: str, timeout: float | None = None) -> dict:
    """Run a script whose last stdout line is a JSON object, and parse it."""
    stdout = run_node(script, *args, timeout=timeout)
    lines = stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise NodeError(f"node {Path(script).name} printed no JSON result", stdout) from None
