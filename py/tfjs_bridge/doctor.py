"""`tfjs-bridge doctor`: is everything installed, and do Python and Node run
one and the same TensorFlow build?"""

from __future__ import annotations

from dataclasses import dataclass, field

from .conversion.convert import converter_version
from .core.errors import BridgeError
from .core.quiet_tf import import_tensorflow
from .core.versions import NOT_INSTALLED, python_versions
from .runtime.addon import tensorflow_c_library
from .runtime.node_process import run_node_json
from .runtime.node_versions import pinned_nodes


@dataclass
class Report:
    versions: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The versions table, then the verdict (problems go to stderr)."""
        width = max(len(k) for k in self.versions)
        table = [f"{k:<{width}}  {v if v is not None else '-'}" for k, v in self.versions.items()]
        return table + (["✓ Python and Node run the same TensorFlow build"] if self.ok else [])


def _pinned_nodes() -> str:
    """The Node binaries tests/test_node_lts.py runs the project on (not a problem if absent)."""
    nodes = pinned_nodes()
    if all(n.installed for n in nodes):
        return ", ".join(n.version for n in nodes)
    return ", ".join(n.version for n in nodes) + " (not installed: `make node-lts`)"


def diagnose() -> Report:
    report = Report()
    v = report.versions
    v.update(python_versions())
    for dist, version in v.items():
        if version == NOT_INSTALLED:
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
        # Run it: an import-time crash (ydf vs protobuf) is how it usually breaks.
        v["tensorflowjs_converter"] = converter_version()
    except (BridgeError, OSError) as exc:
        report.problems.append(f"tensorflowjs_converter --version failed: {exc}")

    try:
        node = run_node_json("scripts/doctor.js", timeout=120)
    except BridgeError as exc:
        report.problems.append(str(exc))
        return report
    v["node"] = node["node"]
    v["node ABI / N-API"] = f"{node['abi']} / {node['napi']}"
    v["util.is* shim"] = ", ".join(node["legacyUtil"]) or "not needed"
    v["pinned Node (tools/node-lts)"] = _pinned_nodes()
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
    if v["tensorflow"] != NOT_INSTALLED and node["tensorflow"] != v["tensorflow"]:
        report.problems.append(
            f"Node runs TensorFlow {node['tensorflow']}, Python runs {v['tensorflow']}"
        )
    if v["tensorflowjs"] != NOT_INSTALLED and node["tfjsNode"] != v["tensorflowjs"]:
        report.problems.append(
            f"tfjs-node {node['tfjsNode']} differs from the converter's "
            f"tensorflowjs {v['tensorflowjs']}"
        )
    return report
