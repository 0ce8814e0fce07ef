"""Where things are. The package is installed editable from ``py/``, so the
project root (with ``node/``, ``node_modules/`` and ``shared_models/``) is three
levels above this file (``py/tfjs_bridge/core/``)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = PROJECT_ROOT / "node"
NODE_MODULES = PROJECT_ROOT / "node_modules"
TFJS_NODE_DIR = NODE_MODULES / "@tensorflow" / "tfjs-node"
MODELS_DIR = PROJECT_ROOT / "shared_models"
NODE_LTS_DIR = PROJECT_ROOT / "tools" / "node-lts"  # Node 22 and 24 (`make node-lts`)


def models_root(out: Path | None) -> Path:
    """The folder holding one folder per model: `out`, or shared_models/."""
    return out if out is not None else MODELS_DIR
