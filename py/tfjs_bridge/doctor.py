"""`tfjs-bridge doctor`: is everything installed, and do Python and Node run
one and the same TensorFlow build?"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .addon import tensorflow_c_library
from .errors import BridgeError
from .node import run_node_json
from .tfimport import import_tensorflow


@dataclass
class Report:
    versions: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _converter_version() -> str | None:
    """Run the converter, since an import-time crash (ydf vs protobuf) is the
    usual way it breaks; its --version is the cheapest call that imports all."""
    converter = Path(sys.executable).with_name("tensorflowjs_converter")
    proc = subprocess.run(
        [str(converter), "--version"], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise BridgeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "")
    for line in proc.stdout.splitlines():
        if line.strip().startswith("tensorflowjs "):
            return line.split()[-1]
    return "unknown"


def diagnose() -> Report:
    report = Report()
    v = report.versions
    v["python"] = platform.python_version()
    for dist in ("tensorflow", "tf-keras", "tensorflowjs", "tfjs-bridge"):
        v[dist] = _dist_version(dist)
        if v[dist] is None:
            report.problems.append(f"Python package {dist} is not installed: run `make setup`")

    python_lib = None
    try:
        tf = import_tensorflow()
        v["tensorflow (imported)"] = tf.__version__
        python_lib = str(tensorflow_c_library())
        v["python libtensorflow"] = python_lib
    except Exception as exc:  # noqa: BLE001 - any import failure is a finding
        report.problems.append(f"import tensorflow failed: {exc}")

    try:
        v["tensorflowjs_converter"] = _converter_version()
    except (BridgeError, OSError, subprocess.TimeoutExpired) as exc:
        report.problems.append(f"tensorflowjs_converter --version failed: {exc}")

    try:
        node = run_node_json("scripts/doctor.js", timeout=120)
    except BridgeError as exc:
        report.problems.append(str(exc))
        return report
    v["node"] = node["node"]
    v["@tensorflow/tfjs-node"] = node["tfjsNode"]
    v["tfjs backend"] = node["backend"]
    v["node TensorFlow"] = node["tensorflow"]
    v["node libtensorflow"] = ", ".join(node["libtensorflow"]) or None

    if node["backend"] != "tensorflow":
        report.problems.append(
            f"tfjs-node uses the '{node['backend']}' backend, not the native 'tensorflow' one"
        )
    if python_lib and python_lib not in node["libtensorflow"]:
        report.problems.append(
            f"the Node addon is linked to {v['node libtensorflow']}, not to the Python "
            f"TensorFlow's {python_lib}: run `make setup` (or `tfjs-bridge build-addon --force`)"
        )
    if v.get("tensorflow") and node["tensorflow"] != v["tensorflow"]:
        report.problems.append(
            f"Node runs TensorFlow {node['tensorflow']}, Python runs {v['tensorflow']}"
        )
    if v.get("tensorflowjs") and node["tfjsNode"] != v["tensorflowjs"]:
        report.problems.append(
            f"tfjs-node {node['tfjsNode']} differs from the converter's "
            f"tensorflowjs {v['tensorflowjs']}"
        )
    return report
