"""The Python package's plan is enforced, not just drawn: import-linter's
layered contract (pyproject.toml) holds, fails on a seeded upward import, and
no module imports another module's private name. Fast: no TensorFlow."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfjs_bridge.core.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "py" / "tfjs_bridge"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # before the editable install's path
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_layered_contract_holds():
    result = _lint_imports(PROJECT_ROOT / "py", PROJECT_ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, upward",
    [
        ("core/errors.py", "from tfjs_bridge.cli import main"),  # the ground floor reaching the top
        ("folder/formats.py", "from tfjs_bridge.parity import verify"),
        # siblings of one layer are independent; a function-local import counts too
        ("runtime/runtimes.py", "def _f():\n    from tfjs_bridge.training import registry"),
    ],
)
def test_a_seeded_upward_import_breaks_it(tmp_path, module, upward):
    shutil.copytree(PACKAGE, tmp_path / "tfjs_bridge", ignore=shutil.ignore_patterns("__pycache__"))
    seeded = tmp_path / "tfjs_bridge" / module
    seeded.write_text(seeded.read_text() + f"\n\n{upward}  # seeded\n")
    result = _lint_imports(tmp_path, PROJECT_ROOT / "pyproject.toml")
    assert result.returncode != 0
    assert "1 broken" in result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout


def _private_imports(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(package)}:{node.lineno} {alias.name}")
    return found


def test_no_module_imports_another_modules_private_name(tmp_path):
    assert _private_imports(PACKAGE) == []
    # The check itself finds one when there is one.
    (tmp_path / "a.py").write_text("from .b import (\n    public,\n    _private,\n)\n")
    assert _private_imports(tmp_path) == ["a.py:1 _private"]
