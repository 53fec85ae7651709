"""Our packages type-check under `mypy --strict` (settings in pyproject.toml's [tool.mypy])."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("signaling", "media", "server", "synthetic")


def test_our_packages_pass_mypy_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails with mypy's own report when any of our packages has a type error."""
    # Relative paths, so the report names files as the editor does; the incremental cache under
    # .mypy_cache keeps a re-run to a few seconds on this 2-core machine.
    monkeypatch.chdir(ROOT)
    stdout, stderr, status = api.run(
        ["--config-file", "pyproject.toml", "--cache-dir", ".mypy_cache", "--strict", *PACKAGES]
    )
    assert status == 0, f"mypy --strict {' '.join(PACKAGES)} failed:\n{stdout}{stderr}"
