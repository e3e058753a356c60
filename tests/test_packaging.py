"""Every package under recon/ is listed in pyproject.toml, so a non-editable install ships it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_recon_package_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "recon").rglob("*.py")
             if "__pycache__" not in p.parts}
    assert found <= listed, f"add to pyproject.toml packages: {sorted(found - listed)}"
    assert "recon_viewer" in listed
