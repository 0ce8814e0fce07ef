"""Names of Python modules written outside Python (Node code that runs
`python -c 'from tfjs_bridge.X import …'`, comments, docs, the Makefile)
point to modules that exist: a moved module must not leave a dangling
reference that only a rare path (a second `node/train.js` run) would meet."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "py" / "tfjs_bridge"
DOTTED = re.compile(r"\btfjs_bridge((?:\.[A-Za-z_]\w*)+)")
# dotted names that are keys, not modules
NOT_MODULES = {
    "tfjs_bridge.path",  # the service's metadata field (docs/serving.md)
    "tfjs_bridge.ran",  # a click ctx.meta key (console.py)
}
FILE = re.compile(r"\bpy/tfjs_bridge/([\w/{},.]+?\.py)\b")


def _sources():
    yield from (p for p in (ROOT / "node").rglob("*.js") if "node_modules" not in p.parts)
    yield from (ROOT / "node").glob("*.json")
    yield from (ROOT / "docs").glob("*.md")
    yield from (ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml")
    yield from PACKAGE.rglob("*.py")
    yield from (p for p in (ROOT / "tests").glob("*.py") if p.name != Path(__file__).name)


def _is_module(parts) -> bool:
    base = PACKAGE.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def dangling_dotted(text: str) -> list[str]:
    """tfjs_bridge.a.b[.name]: the longest module prefix, and at most one name after it."""
    bad = []
    for match in DOTTED.finditer(text):
        if match.group(0) in NOT_MODULES:
            continue
        parts = match.group(1).strip(".").split(".")
        known = max((n for n in range(1, len(parts) + 1) if _is_module(parts[:n])), default=0)
        if known == 0 or len(parts) - known > 1:
            bad.append(match.group(0))
    return bad


def _expand(pattern: str):
    """a/{b,c}/d.py -> a/b/d.py, a/c/d.py"""
    pieces = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(pieces)]
    return ["".join(combo) for combo in itertools.product(*choices)]


def dangling_files(text: str) -> list[str]:
    return [
        f"py/tfjs_bridge/{rel}"
        for match in FILE.finditer(text)
        for rel in _expand(match.group(1))
        if not (PACKAGE / rel).is_file()
    ]


def test_every_module_named_outside_python_exists():
    bad = {}
    for path in _sources():
        text = path.read_text(errors="replace")
        found = dangling_dotted(text) + dangling_files(text)
        if found:
            bad[str(path.relative_to(ROOT))] = sorted(set(found))
    assert not bad, bad


@pytest.mark.parametrize(
    "text",
    [
        "python -c 'from tfjs_bridge.artifacts import exchange'",  # a module that moved
        "see tfjs_bridge.folder.tokenizer.Tokenizer.save.extra",  # too deep past the module
        "written by py/tfjs_bridge/{formats,runtime/runtimes}.py",  # one of two is gone
    ],
)
def test_the_check_finds_a_dangling_name(text):
    assert dangling_dotted(text) + dangling_files(text)


def test_the_check_accepts_live_names():
    text = (
        "from tfjs_bridge.folder.artifacts import exchange; tfjs_bridge.folder.tokenizer.Tokenizer"
        " py/tfjs_bridge/{folder/formats,runtime/runtimes}.py"
    )
    assert dangling_dotted(text) + dangling_files(text) == []
