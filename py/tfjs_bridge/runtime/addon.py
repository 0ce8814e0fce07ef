"""Build @tensorflow/tfjs-node's native addon against the Python TensorFlow.

tfjs-node's own install script downloads libtensorflow 2.9.1 from a non-npm
host, which fails offline. The Python ``tensorflow`` wheel already ships the
TensorFlow C and eager C API (``libtensorflow_cc.so.2`` exports ``TF_*`` and
``TFE_*``) and its headers, so we compile the addon's sources (shipped in the
npm package) against those. Python and Node then run one TensorFlow build, and
``tf.node.loadSavedModel`` reads SavedModels of that TensorFlow version."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BridgeError
from ..core.paths import NODE_MODULES, TFJS_NODE_DIR
from .node_process import node_env, node_executable

TF_C_LIBRARY = "libtensorflow_cc.so.2"
TF_FRAMEWORK_LIBRARY = "libtensorflow_framework.so.2"
TF_HEADERS = ("tensorflow/c/c_api.h", "tensorflow/c/eager/c_api.h")
BUILD_RECORD = "tfjs-bridge-build.json"

# deps/ entry -> file in the tensorflow package. The names are those that
# binding.gyp links (-ltensorflow), that scripts/install.js checks before it
# downloads (libtensorflow.so.2.9.1), and the SONAMEs the loader looks for.
_LINKS = {
    "lib/libtensorflow.so": TF_C_LIBRARY,
    "lib/libtensorflow.so.2": TF_C_LIBRARY,
    "lib/libtensorflow.so.2.9.1": TF_C_LIBRARY,
    "lib/libtensorflow_cc.so.2": TF_C_LIBRARY,
    "lib/libtensorflow_framework.so": TF_FRAMEWORK_LIBRARY,
    "lib/libtensorflow_framework.so.2": TF_FRAMEWORK_LIBRARY,
    "lib/libtensorflow_framework.so.2.9.1": TF_FRAMEWORK_LIBRARY,
    "include": "include",
}


@dataclass(frozen=True)
class AddonBuild:
    addon: Path
    tensorflow_dir: Path
    tensorflow_version: str
    rebuilt: bool


def tensorflow_dir() -> Path:
    """The installed ``tensorflow`` package folder, found without importing it."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise BridgeError(
            "Python TensorFlow is not installed in this environment: run `make setup`"
        )
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def tensorflow_c_library(tf_dir: Path | None = None) -> Path:
    return ((tf_dir or tensorflow_dir()) / TF_C_LIBRARY).resolve()


def _check_tensorflow(tf_dir: Path) -> None:
    needed = [TF_C_LIBRARY, TF_FRAMEWORK_LIBRARY] + [f"include/{h}" for h in TF_HEADERS]
    missing = [name for name in needed if not (tf_dir / name).exists()]
    if missing:
        raise BridgeError(
            f"TensorFlow C library not found in {tf_dir} (missing {', '.join(missing)}): "
            "install the pinned tensorflow wheel with `make setup`"
        )


def find_addon() -> Path | None:
    built = sorted(TFJS_NODE_DIR.glob("lib/napi-v*/tfjs_binding.node"))
    return built[-1] if built else None


def _node_headers() -> Path:
    """Local Node headers, so node-gyp never downloads them."""
    candidates = [os.environ.get("npm_config_nodedir")]
    candidates.append(str(Path(node_executable()).resolve().parents[1]))
    for nodedir in filter(None, candidates):
        if (Path(nodedir) / "include" / "node" / "node_api.h").exists():
            return Path(nodedir)
    raise BridgeError(
        "Node.js headers (include/node/node_api.h) not found beside the node binary: "
        "install them (Debian: apt-get install libnode-dev) or set npm_config_nodedir"
    )


def _replace_symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    os.replace(tmp, link)


def build_addon(tf_dir: Path | None = None, force: bool = False, log=print) -> AddonBuild:
    """Link deps/ to the Python TensorFlow and compile the addon; a no-op when
    the existing addon was built against this same TensorFlow."""
    tf_dir = (tf_dir or tensorflow_dir()).resolve()
    _check_tensorflow(tf_dir)
    if not (TFJS_NODE_DIR / "binding.gyp").exists():
        raise BridgeError(
            f"@tensorflow/tfjs-node is not installed in {NODE_MODULES}: "
            "run `npm ci --ignore-scripts` (or `make setup`)"
        )
    try:
        tf_version = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        tf_version = "unknown"
    record = {"tensorflow_dir": str(tf_dir), "tensorflow_version": tf_version}
    record_path = TFJS_NODE_DIR / "deps" / BUILD_RECORD

    addon = find_addon()
    if not force and addon is not None and record_path.exists():
        if json.loads(record_path.read_text()) == record:
            return AddonBuild(addon, tf_dir, tf_version, rebuilt=False)

    for name, target in _LINKS.items():
        _replace_symlink(TFJS_NODE_DIR / "deps" / name, tf_dir / target)

    node = node_executable()
    pre_gyp = NODE_MODULES / "@mapbox" / "node-pre-gyp" / "bin" / "node-pre-gyp"
    node_gyp = NODE_MODULES / "node-gyp" / "bin" / "node-gyp.js"
    for tool in (pre_gyp, node_gyp):
        if not tool.exists():
            raise BridgeError(f"{tool} is missing: run `npm ci --ignore-scripts` (or `make setup`)")
    env = node_env()
    env["npm_config_nodedir"] = str(_node_headers())
    env["npm_config_node_gyp"] = str(node_gyp)
    log(f"building tfjs-node addon against {tf_dir / TF_C_LIBRARY} (TensorFlow {tf_version})")
    build_log = TFJS_NODE_DIR / "build-addon.log"
    cmd = [node, str(pre_gyp), "install", "--build-from-source"]
    with open(build_log, "w") as out:
        proc = subprocess.run(cmd, cwd=TFJS_NODE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    addon = find_addon()
    if proc.returncode != 0 or addon is None:
        raise BridgeError(
            f"compiling the tfjs-node addon failed (exit {proc.returncode}): see {build_log}"
        )
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return AddonBuild(addon, tf_dir, tf_version, rebuilt=True)
