"""Shared pytest set-up. A missing runtime is a skip with its reason on a
developer's machine, and a failure under CI (CI=true), where both must exist."""

import os
import shutil

import pytest

from tfjs_bridge.runtime.addon import find_addon


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


# Registry models trained small for tests: (epochs, samples). Real data and the
# real converter; only the sizes are cut so that CI stays fast on 2 cores.
SMALL_TRAINING = {
    "gru": (1, 3000),
    "lstm": (None, None),  # the seed's own 2 samples and 10 epochs
    "lstm_sine": (2, 1000),
    "gru_keras": (1, 2000),
    "rnn_stack": (1, 1000),
    # 1,000 mails of each split, 10 epochs (~2 s): 96 % test accuracy.
    "spam": (10, 1000),
    # 2 epochs (~15 s): 88 % test accuracy, its probabilities spread over
    # 0.01-0.84. One epoch of a few hundred says ham to every mail
    # (0.43-0.47): a parity check on near-constant outputs tests little.
    "spam_rnn": (2, 1000),
}


def build_small_models(root):
    """Every registry model trained small and converted to every format, into root."""
    import importlib.util

    from tfjs_bridge.conversion.convert import convert
    from tfjs_bridge.conversion.converter_process import shared_converter
    from tfjs_bridge.training.registry import MODELS
    from tfjs_bridge.training.train import train

    onnx = ("onnx",) if importlib.util.find_spec("tf2onnx") else ()  # `make onnx` only
    with shared_converter():  # the converter starts once, not twice per model
        for name, spec in MODELS.items():
            epochs, limit = SMALL_TRAINING[name]
            train(spec, root, epochs=epochs, limit=limit)
            convert(root / name, ("layers", "graph", *onnx))
    return root


@pytest.fixture(scope="session")
def small_models(tmp_path_factory):
    """Every registry model trained small and converted to every format, once per session.

    A developer running a few tests may set TFJS_BRIDGE_SMALL_MODELS to a folder
    built once by `python tests/conftest.py DIR`: it is copied, never changed
    (tests re-record and corrupt files in their copy). CI always trains afresh."""
    root = tmp_path_factory.mktemp("shared_models")
    prebuilt = os.environ.get("TFJS_BRIDGE_SMALL_MODELS")
    if prebuilt and not os.environ.get("CI"):
        shutil.copytree(prebuilt, root, dirs_exist_ok=True)
        return root
    return build_small_models(root)


@pytest.fixture
def rerecord():
    """Re-records a file's sha256 in its folder's manifest, as a converter that
    wrote a wrong model itself would: the file is then consistent, but wrong."""
    import json

    from tfjs_bridge.folder.artifacts import sha256

    def record(model_dir, rel):
        manifest_path = model_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        folder, name = rel.split("/", 1)
        for conversion in manifest.get("conversions", {}).values():
            if conversion.get("output") == folder:
                conversion["files"][name] = sha256(model_dir / rel)
        manifest_path.write_text(json.dumps(manifest))

    return record


if __name__ == "__main__":
    import sys
    from pathlib import Path

    build_small_models(Path(sys.argv[1]))
