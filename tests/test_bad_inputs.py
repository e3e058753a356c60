"""Bad input and faults, through the CLI: each gets one line naming the file or setting, a nonzero
exit, no traceback, and nothing half-written."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.cli import main
from recon.io.nerfstudio import write_nerfstudio

TINY = ["--preset", "fast", "--device", "cpu", "--config.optimize.steps", "10", "--config.init.num-random", "200",
        "--config.optimize.densify.no-enabled", "--config.no-share-cpu"]
ROOT = Path(__file__).resolve().parents[1]


def error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("recon: error")]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def posed(tmp_path, scene):
    folder = tmp_path / "posed"
    write_nerfstudio(scene, folder)
    return folder


def test_a_wrong_type_in_a_preset_names_the_file_and_setting(tmp_path, posed, capsys):
    bad = tmp_path / "mine.yaml"
    bad.write_text("optimize:\n  steps: 1k\n")
    assert main(["run", "--images", str(posed), "--out", str(tmp_path / "o"), "--preset", str(bad)]) == 2
    line = error_line(capsys)
    assert "mine.yaml" in line and "optimize:steps" in line and "integer" in line and "'1k'" in line
    assert not (tmp_path / "o").exists(), "refused before anything was written"
    bad.write_text("optimize:\n  background: green\n")
    assert main(["run", "--images", str(posed), "--out", str(tmp_path / "o"), "--preset", str(bad)]) == 2
    assert "'black', 'white', 'random'" in error_line(capsys)


def test_a_wrong_type_in_a_flag_is_one_line(tmp_path, posed, capsys):
    assert main(["run", "--images", str(posed), "--out", str(tmp_path / "o"), "--config.optimize.steps", "1k"]) == 2
    line = error_line(capsys)
    assert "--config.optimize.steps" in line and "1k" in line and "╭" not in line


def test_settings_that_would_do_nothing_are_refused(tmp_path, posed, capsys):
    for flags, names in ((["--config.filters.mode", "off", "--config.filters.haze", "on"], ("filters.haze", "filters.mode")),
                         (["--config.filters.mode", "on", "--config.filters.no-transients",
                           "--config.filters.robust.k", "2"], ("filters.robust", "filters.transients"))):
        assert main(["run", "--images", str(posed), "--out", str(tmp_path / "o"), *TINY, *flags]) == 2
        line = error_line(capsys)
        assert all(n in line for n in names), line


def test_a_huge_image_is_refused_by_name(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((60, 80, 3)) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    Image.new("1", (14_000, 13_000)).save(folder / "huge.png")  # 182 MP, a tiny file
    assert main(["run", "--images", str(folder), "--out", str(tmp_path / "o"), *TINY]) == 2
    line = error_line(capsys)
    assert "huge.png" in line and "megapixels" in line


def test_a_large_jpeg_is_decoded_small(tmp_path):
    """A 36 MP photo loaded at 800 px never becomes a full-size float image."""
    from recon.io.images import read_image

    big = tmp_path / "big.jpg"
    Image.fromarray(np.full((4800, 7200, 3), 128, np.uint8)).save(big, quality=90)
    rgb, _ = read_image(big, (800, 533))
    assert rgb.shape == (533, 800, 3) and abs(float(rgb.mean()) - 128 / 255) < 0.01


@pytest.mark.parametrize("kind", ["black", "white", "noise"])
def test_photos_without_content_or_matches_are_named_as_such(tmp_path, kind, capsys):
    folder = tmp_path / kind
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = {"black": np.zeros((120, 160, 3)), "white": np.ones((120, 160, 3)),
                  "noise": rng.random((120, 160, 3))}[kind]
        Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    assert main(["run", "--images", str(folder), "--out", str(tmp_path / "o"), *TINY]) == 2
    line = error_line(capsys)
    assert "duplicate" not in line
    if kind == "noise":
        assert "nothing matches" in line
    else:
        assert f"p0.png is all {kind}" in line


def test_an_output_path_that_is_a_file_is_refused(tmp_path, posed, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "--images", str(posed), "--out", str(blocker / "run"), *TINY]) == 2
    assert "cannot write the output folder" in error_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the fault is simulated below")
def test_a_read_only_output_folder_is_refused(tmp_path, posed, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(["run", "--images", str(posed), "--out", str(out / "run"), *TINY]) == 2
        assert "cannot write the output folder" in error_line(capsys)
    finally:
        out.chmod(0o755)


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_a_read_only_or_full_disk_mid_run_is_one_line_and_leaves_nothing_half_written(
        tmp_path, posed, capsys, monkeypatch, code):
    import recon.cache

    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("artifact.pkl") and "init-" in str(dst):
            raise OSError(code, os.strerror(code), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(recon.cache.os, "replace", failing_replace)
    out = tmp_path / "run"
    assert main(["run", "--images", str(posed), "--out", str(out), *TINY]) == 2
    line = error_line(capsys)
    assert "artifact.pkl" in line and os.strerror(code) in line
    assert not list(out.rglob("*.tmp")), "no temporary file left behind"
    assert not list(out.glob("cache/init-*/artifact.pkl"))


def test_an_output_folder_inside_the_input_folder_reuses_the_cache(tmp_path, scene, capsys):
    folder = tmp_path / "posed"
    write_nerfstudio(scene, folder)
    out = folder / "run"
    assert main(["run", "--images", str(folder), "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["run", "--images", str(folder), "--out", str(out), *TINY]) == 0
    err = capsys.readouterr().err
    for stage in ("poses", "init", "optimize"):
        assert f"{stage:<9} reused from cache" in err, err


def test_photos_with_the_run_folder_inside_are_still_just_the_photos(tmp_path, capsys):
    """Four photos and `--out photos/run`: the run's own renders and camera files are not input."""
    folder = tmp_path / "photos"
    shutil.copytree(ROOT / "data" / "four_views", folder)
    args = ["run", "--images", str(folder), "--out", str(folder / "run"), *TINY, "--until", "poses"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "poses     reused from cache" in err and "4 photos" in err
