"""The command line: help for every command, an end-to-end run on a posed folder, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon.cli import COMMANDS, main
from recon.io.nerfstudio import write_nerfstudio

TINY = ["--preset", "fast", "--device", "cpu", "--config.optimize.steps", "20",
        "--config.init.num-random", "200", "--config.optimize.densify.no-enabled"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_explains_its_options(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--" in out and len(out.splitlines()) > 5


def test_top_level_usage(capsys):
    assert main([]) == 0
    assert "run" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2


@pytest.fixture
def posed_folder(tmp_path, scene):
    folder = tmp_path / "posed"
    write_nerfstudio(scene, folder)
    return folder


def test_run_end_to_end_and_export(tmp_path, posed_folder, capsys):
    out = tmp_path / "run"
    assert main(["run", "--images", str(posed_folder), "--out", str(out), *TINY]) == 0
    assert (out / "splat.ply").exists() and (out / "cameras.json").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["optimize"]["steps"] == 20, "a flag overrides the preset"
    assert run["config"]["ingest"]["max_size"] == 800, "the preset overrides the default"
    assert "splat.ply" in capsys.readouterr().err

    assert main(["export", str(out), "--format", "splat"]) == 0
    assert (out / "splat.splat").stat().st_size % 32 == 0
    assert main(["export", str(out), "--format", "nerfstudio", "--out", str(tmp_path / "t.json")]) == 0
    frames = json.loads((tmp_path / "t.json").read_text())["frames"]
    assert len(frames) == 4


def test_run_json_names_the_preset_asked_and_what_it_resolved_to(tmp_path, posed_folder):
    """run.json holds the resolved settings, and which preset they came from: a run of the default
    `auto` says it ran `fast` (on the CPU), so the run can be reproduced from its folder."""
    cheap = ["--images", str(posed_folder), "--device", "cpu", "--until", "poses"]
    for flags, expected in (([], {"asked": "auto", "resolved": "fast"}),
                            (["--preset", "auto"], {"asked": "auto", "resolved": "fast"}),
                            (["--preset", "vanilla"], {"asked": "vanilla", "resolved": "vanilla"})):
        out = tmp_path / "_".join(["run", *flags])
        assert main(["run", *cheap, "--out", str(out), *flags]) == 0
        assert json.loads((out / "run.json").read_text())["preset"] == expected, flags


def test_until_stops_early(tmp_path, posed_folder):
    out = tmp_path / "run"
    assert main(["run", "--images", str(posed_folder), "--out", str(out), "--until", "init", *TINY]) == 0
    assert not (out / "splat.ply").exists()
    assert json.loads((out / "run.json").read_text())["stage_seconds"].keys() >= {"ingest", "poses", "init"}


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, f"expected one line, got {err}"
    assert "Traceback" not in err[0]
    return err[0]


def test_missing_folder(tmp_path, capsys):
    assert main(["run", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in _error_line(capsys)


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["run", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "empty" in _error_line(capsys)


def test_corrupt_image(tmp_path, posed_folder, capsys):
    victim = sorted((posed_folder / "images").glob("*.png"))[0]
    victim.write_bytes(b"this is not a png")
    assert main(["run", "--images", str(posed_folder), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert victim.name in _error_line(capsys)


def test_camera_count_mismatch(tmp_path, posed_folder, capsys):
    tj = posed_folder / "transforms.json"
    data = json.loads(tj.read_text())
    data["frames"].append(dict(data["frames"][0], file_path="images/missing.png"))
    tj.write_text(json.dumps(data))
    assert main(["run", "--images", str(posed_folder), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "missing.png" in _error_line(capsys)


def test_masks_none_ignores_the_mask_files_and_a_wrong_value_is_one_line(tmp_path, posed_folder, capsys):
    assert main(["run", "--images", str(posed_folder), "--out", str(tmp_path / "o"), *TINY, "--until", "poses",
                 "--config.ingest.masks", "none"]) == 0
    assert "no masks" in capsys.readouterr().err
    assert main(["run", "--images", str(posed_folder), "--out", str(tmp_path / "o"), *TINY,
                 "--config.ingest.masks", "True"]) == 2
    assert "'files', 'auto', 'none'" in _error_line(capsys)


def test_unknown_preset(tmp_path, posed_folder, capsys):
    assert main(["run", "--images", str(posed_folder), "--preset", "turbo"]) == 2
    assert "turbo" in _error_line(capsys)


def test_single_image_without_cameras(tmp_path, capsys):
    folder = tmp_path / "one"
    folder.mkdir()
    import imageio.v3 as iio

    iio.imwrite(folder / "a.png", (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8))
    assert main(["run", "--images", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "one" in _error_line(capsys) or "a.png" in _error_line(capsys)


def test_single_posed_view(tmp_path, capsys):
    from synthetic import synthetic_scene

    folder = tmp_path / "single"
    write_nerfstudio(synthetic_scene(n_views=1), folder)
    assert main(["run", "--images", str(folder), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "at least 2" in _error_line(capsys)
