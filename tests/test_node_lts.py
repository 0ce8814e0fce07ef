"""The project on Node 22 and 24, the current LTS lines (docs/node-versions.md):
the pinned binaries of tools/node-lts (`make node-lts`) put first on PATH, with
the one addon `make setup` built (N-API), run predict.js, the worker behind
verify, the service and doctor.js. Each must give what Node 20 and Keras give,
with nothing from Node on stderr: no DeprecationWarning for tfjs-node's
util.is* calls (node/lib/runtime/legacy_util.js). The negative control shows
that without that shim Node 24 fails and Node 22 warns, so these tests can fail."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from service import serving
from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.folder.npy import load_array, save_array
from tfjs_bridge.runtime.node_versions import pinned_nodes

BRIDGE = shutil.which("tfjs-bridge") or str(PROJECT_ROOT / ".venv" / "bin" / "tfjs-bridge")
NODE_WARNING = re.compile(r"\(node:\d+\)|DeprecationWarning")  # how Node prints any warning
SHIMMED = ["isNullOrUndefined", "isArray"]


def _env(bin_dir=None):
    env = dict(os.environ)
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def _quiet(stderr: str) -> bool:
    return NODE_WARNING.search(stderr) is None


@pytest.fixture(params=[n.major for n in pinned_nodes()], ids=lambda major: f"node{major}")
def lts(request, node_runtime):
    """A pinned Node, installed, answering with its pinned version."""
    (node,) = [n for n in pinned_nodes() if n.major == request.param]
    if not node.installed:
        reason = f"Node {node.version} is not installed (run `make node-lts`)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run every pinned Node")
        pytest.skip(reason)
    said = subprocess.run(
        ["node", "--version"], env=_env(node.bin_dir), capture_output=True, text=True, check=True
    )
    assert said.stdout.strip() == f"v{node.version}"
    return node


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with x.npy: 16 MNIST-shaped inputs."""
    folder = tmp_path_factory.mktemp("lts_inputs")
    x = np.random.default_rng(25).random((16, 28, 28), dtype=np.float32)
    save_array(folder / "x.npy", x)
    return folder


def _predict(model_dir, inputs, out, fmt, bin_dir=None):
    cmd = ["node", str(NODE_DIR / "predict.js"), "--model", str(model_dir), "--format", fmt]
    cmd += ["--input", str(inputs / "x.npy"), "--output", str(out)]
    proc = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=_env(bin_dir), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return load_array(out), proc


@pytest.fixture(scope="module")
def node20(node_runtime, small_models, inputs):
    """{format: outputs} from the Node on PATH (the machine's Node 20)."""
    outputs = {}
    for fmt in ("layers", "graph"):
        outputs[fmt], _ = _predict(small_models / "gru", inputs, inputs / f"y20_{fmt}.npy", fmt)
    return outputs


def test_predict_js_gives_node_20s_bits_quietly(lts, small_models, inputs, node20, tmp_path):
    for fmt in ("layers", "graph"):
        out = tmp_path / f"y_{fmt}.npy"
        y, proc = _predict(small_models / "gru", inputs, out, fmt, lts.bin_dir)
        assert proc.stderr == "", f"Node {lts.version} said on stderr:\n{proc.stderr}"
        # One addon, one libtensorflow: the same kernels, so the same bits.
        np.testing.assert_array_equal(y, node20[fmt], err_msg=f"{fmt} on Node {lts.version}")


def test_verify_on_the_worker_passes_against_keras(lts, small_models, tmp_path):
    """The worker-backed path (node/worker.js, started by the Python side from
    PATH) against Keras itself; a copy of the folder, as verify writes parity.json."""
    shutil.copytree(small_models / "gru", tmp_path / "models" / "gru")
    cmd = [BRIDGE, "verify", "gru", "--out", str(tmp_path / "models"), "--samples", "100"]
    cmd += ["--runtime", "tfjs-node/layers", "--runtime", "tfjs-node/saved_model"]
    cmd += ["--report", str(tmp_path / "report")]
    proc = subprocess.run(cmd, env=_env(lts.bin_dir), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    worker = report["versions"]["node"]["tensorflow"]
    assert worker["node"] == lts.version and worker["legacyUtil"] == SHIMMED, worker
    verdicts = {r["runtime"]: r["status"] for r in report["results"]}
    assert verdicts == {"tfjs-node/layers": "pass", "tfjs-node/saved_model": "pass"}, verdicts


def test_serve_answers_a_request(lts, small_models, inputs, node20, monkeypatch):
    """serve.js and its worker processes (spawned with process.execPath) on
    Node 22/24: one predict request, Node 20's numbers, no warning in its log."""
    monkeypatch.setenv("PATH", _env(lts.bin_dir)["PATH"])
    x = load_array(inputs / "x.npy")[:3]
    with serving(small_models / "gru") as svc:
        status, body = svc.predict("gru", {"instances": x.tolist()})
    assert status == 200, body
    np.testing.assert_allclose(np.float32(body["predictions"]), node20["layers"][:3], atol=1e-6)
    assert _quiet("\n".join(svc.errors)), svc.errors


def test_doctor_js_reports_the_abi_and_the_shim(node_runtime, lts):
    def doctor(bin_dir=None):
        proc = subprocess.run(
            ["node", str(NODE_DIR / "scripts" / "doctor.js")],
            cwd=PROJECT_ROOT, env=_env(bin_dir), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0 and _quiet(proc.stderr), proc.stderr
        return json.loads(proc.stdout)

    info = doctor(lts.bin_dir)
    assert info["node"] == lts.version and info["legacyUtil"] == SHIMMED
    assert info["backend"] == "tensorflow" and info["tensorflow"] == "2.19.0"
    system = doctor()
    assert info["abi"] != system["abi"]  # another ABI, the same addon file: N-API
    if system["node"].startswith("20."):
        assert system["legacyUtil"] == []  # Node 20's own helpers are left alone


# Without legacy_util.js: tfjs-node required directly, as before the shim, and
# one op through its native kernels (a concat: its dtype attribute, taken
# from a list of tensors, is where tfjs-node calls util.isNullOrUndefined and
# util.isArray).
WITHOUT_SHIM = """
if (process.argv[1] === 'shim') require('./node/lib/runtime/legacy_util').installLegacyUtil();
const tf = require('@tensorflow/tfjs-node');
console.log(tf.concat([tf.tensor1d([1, 2]), tf.tensor1d([3, 4])]).dataSync().join(' '));
"""


def _bare(bin_dir, *argv):
    return subprocess.run(
        ["node", "-e", WITHOUT_SHIM, *argv],
        cwd=PROJECT_ROOT, env=_env(bin_dir), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_without_the_shim_node_24_fails_and_node_22_warns(lts):
    """The negative control: what the issue reported, shown on each version,
    and the same script with the shim installed first."""
    bare = _bare(lts.bin_dir)
    if lts.major >= 23:  # util.isNullOrUndefined removed
        assert bare.returncode != 0, bare.stdout
        assert "(0 , util_1.isNullOrUndefined) is not a function" in bare.stderr, bare.stderr
    else:  # deprecated: works, and says so on stderr
        assert bare.returncode == 0 and bare.stdout.strip() == "1 2 3 4", bare.stderr
        assert "[DEP0051] DeprecationWarning" in bare.stderr, bare.stderr
        assert "[DEP0044] DeprecationWarning" in bare.stderr, bare.stderr
        assert not _quiet(bare.stderr)  # the check the tests above make sees it

    shimmed = _bare(lts.bin_dir, "shim")
    assert shimmed.returncode == 0 and shimmed.stdout.strip() == "1 2 3 4", shimmed.stderr
    assert _quiet(shimmed.stderr), shimmed.stderr


def test_tfjs_node_is_required_in_one_place_only():
    """tfnode.js installs the shim before it requires tfjs-node: any other
    require of tfjs-node would run without it on Node 24."""
    requiring = sorted(
        str(path.relative_to(PROJECT_ROOT))
        for path in NODE_DIR.rglob("*.js")
        if "node_modules" not in path.parts
        and re.search(r"""require\(\s*['"]@tensorflow/tfjs-node['"]""", path.read_text())
    )
    assert requiring == ["node/lib/runtime/tfnode.js"]
