"""node/train.js puts its model folder in place as a whole: a first run with
one rename, a later one with one atomic exchange (renameat2, the mechanism
the Python side uses: node/lib/io/swap.js), and a failed swap leaves the old
model as it was and no staging folder behind."""

import json
import os
import subprocess

from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.runtime.node_process import node_env


def _train(out, **env):
    cmd = ["node", str(NODE_DIR / "train.js"), "lstm", "--epochs", "1", "--out", str(out), "--json"]
    return subprocess.run(
        cmd, cwd=PROJECT_ROOT, env={**node_env(), **env}, capture_output=True, text=True
    )


def _created(out):
    return json.loads((out / "manifest.json").read_text())["created"]


def _siblings(out):
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def test_a_second_run_replaces_the_folder_whole(node_runtime, tmp_path):
    out = tmp_path / "lstm_node"
    assert _train(out).returncode == 0
    first, inode = _created(out), os.stat(out).st_ino
    second = _train(out)
    assert second.returncode == 0, second.stderr
    assert _created(out) != first
    assert os.stat(out).st_ino != inode  # a new folder took the name, not files rewritten in place
    assert _siblings(out) == []  # no staging or old folder left


def test_a_failed_swap_keeps_the_old_model(node_runtime, tmp_path):
    out = tmp_path / "lstm_node"
    assert _train(out).returncode == 0
    before = _created(out)
    failed = _train(out, TFJS_BRIDGE_PYTHON="/bin/false")
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {out}: could not swap in"), errors
    assert _created(out) == before
    assert _siblings(out) == []
