"""Versions of every runtime involved, for manifests and reports."""

from __future__ import annotations

import importlib.metadata
import platform

NOT_INSTALLED = "not installed"


def python_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("tensorflow", "tf-keras", "keras", "tensorflowjs", "numpy", "tfjs-bridge"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = NOT_INSTALLED
    return out
