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


def test_a_built_wheel_installs_with_every_preset_and_the_protocol_data(tmp_path):
    """`pip install .` as a user does (not -e): the presets, split files and published numbers come
    with the package, and the bundled sample photos do not."""
    import subprocess
    import sys
    import sysconfig
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("recon-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "recon/configs/fast.yaml" in names and "recon/data/published.yaml" in names
    assert "recon/data/splits/dtu_regnerf_3views.json" in names
    assert not [n for n in names if "four_views" in n], "the sample photos stay in the repository"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    # The fresh venv sees this environment's dependencies (torch, ...) but not the checkout's recon:
    # a .pth line adds a folder without running the editable install's hook that lives there.
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    check = ("import recon, recon.presets as p; from importlib import resources; "
             "assert 'site-packages' in recon.__file__, recon.__file__; "
             "names = p.preset_names(); assert {'fast', 'quality', 'vanilla'} <= set(names), names; "
             "[p.load_preset(n) for n in names]; "
             "assert (resources.files('recon.data') / 'published.yaml').is_file(); print('ok', names)")
    out = subprocess.run([str(py), "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr
