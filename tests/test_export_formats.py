"""`recon export` for every format: a folder without a splat is refused in one line, options of
another format are refused rather than ignored, the splat formats convert both ways, and
`recon view` opens what they write."""

from __future__ import annotations

import pytest
import torch
from splat_random import random_splat
from splat_shapes import write_run
from synthetic import ring_cameras

from recon.cli import main
from recon.exports.formats import FORMATS, export_run
from recon.io.ply import read_ply
from recon.io.splat_formats import read_splat


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.strip().splitlines() if line]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_refuses_a_folder_without_a_splat(tmp_path, fmt, capsys):
    (tmp_path / "cameras.json").write_text("[]")
    assert main(["export", str(tmp_path), "--format", fmt]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "no splat.ply here" in lines[0] and str(tmp_path) in lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["cameras.json"]


@pytest.mark.parametrize("args, message", [
    (["--format", "spz", "--fps", "10"], "--fps applies to --format video, not spz"),
    (["--format", "video", "--mesh-method", "poisson"], "--mesh-method applies to --format mesh"),
    (["--format", "mesh", "--spz-version", "2"], "--spz-version applies to --format spz"),
    (["--format", "ply", "--device", "cpu"], "--device applies to --format mesh and video"),
])  # fmt: skip
def test_another_formats_option_is_refused(tmp_path, args, message, capsys):
    write_run(tmp_path, random_splat(10, 0), ring_cameras(2))
    assert main(["export", str(tmp_path), *args]) == 2
    assert message in error_lines(capsys)[0]


@pytest.fixture
def run(tmp_path):
    write_run(tmp_path, random_splat(700, 3, sh_range=0.9), ring_cameras(3))
    return tmp_path


def test_spz_and_compressed_ply_exports_that_recon_view_opens(run, capsys):
    from recon_viewer.view import load

    g = read_ply(run / "splat.ply")
    assert main(["export", str(run), "--format", "spz"]) == 0
    assert main(["export", str(run), "--format", "spz", "--spz-version", "2", "--out", str(run / "v2.spz")]) == 0
    assert main(["export", str(run), "--format", "compressed-ply"]) == 0
    for name in ("splat.spz", "v2.spz", "splat.compressed.ply"):
        loaded = load(run / name)
        assert len(loaded.gaussians) == 700 and loaded.gaussians.sh_degree == 3
        assert len(loaded.cameras) == 3  # the run's cameras.json beside it
        assert sorted(loaded.gaussians.means[:, 0].tolist()) == pytest.approx(sorted(g.means[:, 0].tolist()),
                                                                              abs=2e-3)
    sizes = {p.name: p.stat().st_size for p in run.iterdir()}
    assert sizes["splat.spz"] < sizes["splat.compressed.ply"] < sizes["splat.ply"] / 3  # 61 vs 248 bytes a splat
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_splat_file_converts_to_any_other(run):
    export_run(run, "spz")
    back = export_run(run / "splat.spz", "ply", run / "from_spz.ply")
    h, g = read_ply(back), read_splat(run / "splat.spz")
    assert torch.equal(h.means, g.means) and torch.equal(h.shN, g.shN)
    export_run(run / "splat.spz", "compressed-ply", run / "c.ply")
    assert len(read_splat(run / "c.ply")) == 700
    # an Inria .ply is copied byte for byte
    assert export_run(run, "ply").read_bytes() == (run / "splat.ply").read_bytes()


def test_a_missing_splat_file_is_named(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.spz"), "--format", "ply"]) == 2
    assert "nope.spz: no such splat file" in error_lines(capsys)[0]
