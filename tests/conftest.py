"""Shared pytest set-up. A missing runtime is a skip with its reason on a
developer's machine, and a failure under CI (CI=true), where both must exist."""

import os
import shutil

import pytest

from tfjs_bridge.addon import find_addon


def _missing_runtime() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not on PATH"
    if find_addon() is None:
        return "the tfjs-node addon is not built (run `make setup`)"
    return None


@pytest.fixture(scope="session")
def node_runtime():
    reason = _missing_runtime()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run every runtime")
        pytest.skip(reason)
