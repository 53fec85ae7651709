"""The layering rule: signaling/ and media/ import nothing of ours; web/ holds no Python."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUR_PACKAGES = frozenset({"server", "signaling", "media", "web", "synthetic", "config", "bench", "tests"})
SELF_CONTAINED = ("signaling", "media")


def imported_roots(source: str, package: str, depth: int) -> set[str]:
    """Top-level names a module imports; a relative import that climbs out of its package counts as ".."."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
            elif node.level > depth:
                roots.add("..")
            elif node.level:
                roots.add(package)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                roots.add(first.value.lstrip(".").split(".")[0] or package)
    return roots


def _is_dynamic_import(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in {"import_module", "__import__"}


def forbidden_imports(package: str) -> dict[str, set[str]]:
    """Map each module of package to the names of ours it imports other than itself."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT)
        depth = len(relative.parts) - 1
        roots = imported_roots(path.read_text(encoding="utf-8"), package, depth)
        bad = {root for root in roots if root == ".." or (root in OUR_PACKAGES and root != package)}
        if bad:
            found[str(relative)] = bad
    return found


@pytest.mark.parametrize("package", SELF_CONTAINED)
def test_package_imports_nothing_else_of_ours(package: str) -> None:
    assert (ROOT / package).is_dir()
    assert forbidden_imports(package) == {}


def test_web_holds_no_python() -> None:
    assert sorted(str(p.relative_to(ROOT)) for p in (ROOT / "web").rglob("*.py")) == []


def test_the_checker_sees_absolute_relative_and_dynamic_imports() -> None:
    source = "\n".join(
        [
            "import os, media.rtp",
            "from server.store import Store",
            "from . import codec",
            "from .. import web",
            "import importlib",
            "importlib.import_module('synthetic.sites')",
        ]
    )
    assert imported_roots(source, "signaling", depth=1) == {
        "os",
        "media",
        "server",
        "signaling",
        "..",
        "importlib",
        "synthetic",
    }


def test_relative_imports_within_a_subpackage_stay_inside_it() -> None:
    assert imported_roots("from .. import codec", "media", depth=2) == {"media"}
