"""Batch evaluation: outputs per view count, resume, failure isolation, timeouts, SpaRe submission."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.cli import main
from recon.eval.batch import BatchSpec, run_batch
from recon.presets import apply_overrides, load_preset
from test_eval_layouts import write_llff, write_regnerf_dtu, write_spare

TINY = {"optimize": {"steps": 20, "backend": "cpu", "densify": {"enabled": False}}, "init": {"num_random": 200}}
TINY_FLAGS = ["--preset", "fast", "--device", "cpu", "--threads", "1", "--config.optimize.steps", "20",
              "--config.optimize.backend", "cpu", "--config.init.num-random", "200",
              "--config.optimize.densify.no-enabled"]


def tiny_cfg(**optimize):
    cfg = apply_overrides(load_preset("fast"), TINY, "test")
    cfg = apply_overrides(cfg, {"optimize": optimize, "device": "cpu"}, "test")
    return cfg


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory) -> Path:
    """A RegNeRF-layout DTU root (scan8) and an LLFF scene (fern) under one data folder."""
    root = tmp_path_factory.mktemp("data")
    write_regnerf_dtu(root / "dtu", scans=(8,))
    write_llff(root / "fern")
    return root


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and "score.json" in p.name}


def test_mixed_batch_outputs_then_resume(tmp_path, mixed_root, capsys):
    out = tmp_path / "out"
    args = ["eval", "--protocol", "auto", "--data", str(mixed_root), "--views", "2", "3",
            "--scenes", "scan8", "fern@2", "--out", str(out), *TINY_FLAGS]
    assert main(args) == 0
    # several view counts: OUT/views{N}/results.json in #2's schema, scene folders beside them
    r2 = json.loads((out / "views2" / "results.json").read_text())
    r3 = json.loads((out / "views3" / "results.json").read_text())
    assert set(r2["scenes"]) == {"scan8", "fern"} and set(r3["scenes"]) == {"scan8"}, "fern@2 only at 2 views"
    assert r2["protocol"] == "dtu+llff" and set(r2["mean_by_protocol"]) == {"dtu", "llff"}
    scan = r3["scenes"]["scan8"]
    assert scan["train_views"] == [25, 22, 28] and len(scan["test_views"]) == 25
    for key in ("psnr", "psnr_masked", "ssim", "ssim_masked", "seconds", "num_gaussians"):
        assert scan[key] is not None, key
    assert scan["lpips"] is None or scan["lpips"] >= 0
    assert r2["scenes"]["fern"]["psnr_masked"] is None
    test = out / "views3" / "scan8" / "test"
    assert sorted(p.name for p in test.glob("*.png")) == [f"{i:03d}.png" for i in scan["test_views"]]
    assert Image.open(test / "001.png").size == (48, 36)
    assert (out / "views3" / "scan8" / "run" / "splat.ply").is_file()
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["protocol"], r["scene"], r["views"]) for r in rows] == [
        ("dtu", "scan8", "2"), ("dtu", "scan8", "3"), ("llff", "fern", "2")]
    report = (out / "report.md").read_text()
    assert "comparison with published numbers" in report and "RegNeRF" in report and "| **mean** " in report
    for png in ("plots/dtu_by_scene.png", "plots/llff_by_scene.png", "plots/psnr_vs_views.png",
                "views2/contact_sheet.png", "views3/contact_sheet.png"):
        assert (out / png).stat().st_size > 1000, png

    # a second invocation reuses every finished job: no score.json is rewritten
    before = _mtimes(out)
    capsys.readouterr()
    assert main(args) == 0
    assert "3 already finished, 0 to run" in capsys.readouterr().err
    assert _mtimes(out) == before
    assert json.loads((out / "views3" / "results.json").read_text())["scenes"] == r3["scenes"]

    # --force recomputes (here one job): same seed, same numbers
    assert main(["eval", "--protocol", "auto", "--data", str(mixed_root), "--views", "2", "3",
                 "--scenes", "fern@2", "--out", str(out), *TINY_FLAGS, "--force"]) == 0
    again = json.loads((out / "views2" / "results.json").read_text())["scenes"]["fern"]
    assert again["psnr"] == r2["scenes"]["fern"]["psnr"] and again["ssim"] == r2["scenes"]["fern"]["ssim"]


def test_a_failing_scene_is_recorded_and_the_batch_goes_on(tmp_path, capsys):
    root = tmp_path / "data"
    write_llff(root / "good")
    write_llff(root / "broken")
    (root / "broken" / "images_8" / "IMG_0003.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    args = ["eval", "--protocol", "llff", "--data", str(root), "--views", "2", "--out", str(out), *TINY_FLAGS]
    assert main(args) == 2, "nonzero exit when a scene failed, after writing every output"
    assert "1 scene/view count(s) failed" in capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["failed"] == ["broken"]
    bad, good = res["scenes"]["broken"], res["scenes"]["good"]
    assert bad["status"] == "error" and "IMG_0003.png" in bad["error"] and bad["psnr"] is None
    assert good["status"] == "ok" and res["mean"]["psnr"] == pytest.approx(good["psnr"])
    assert (out / "broken" / "error.log").read_text().startswith("Traceback")
    assert "## Failures" in (out / "report.md").read_text()
    # the next batch retries the failure (fixed now) and reuses the good scene
    write_llff(root / "broken")
    capsys.readouterr()
    assert main(args) == 0
    assert "1 already finished, 1 to run" in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["scenes"]["broken"]["status"] == "ok"


def test_a_timed_out_scene_is_stopped_and_recorded(tmp_path):
    root = write_llff(tmp_path / "fern")
    spec = BatchSpec(protocol="llff", data=root, views=(2,), out=tmp_path / "out", cfg=tiny_cfg(steps=10**7),
                     timeout=2.0, threads=1)
    res = run_batch(spec, say=lambda s: None)[2]
    entry = res["scenes"]["fern"]
    assert entry["status"] == "timeout" and "2 s" in entry["error"]
    assert res["mean"]["psnr"] is None and res["failed"] == ["fern"]


def test_spare_batch_scores_visible_views_and_writes_the_submission(tmp_path):
    root = write_spare(tmp_path / "spare")
    # few Gaussians: a CPU render at 1600×1200 costs about pixels × Gaussians per pixel
    cfg = apply_overrides(tiny_cfg(), {"init": {"num_random": 40}}, "test")
    spec = BatchSpec(protocol="spare", data=root, views=(3,), out=tmp_path / "out", cfg=cfg,
                     protocol_options={"train_downscale": 1}, submission=True, threads=1)
    res = run_batch(spec, say=lambda s: None)
    assert list(res) == [3], "Track 1 split: 3 input views"
    scan, amp = res[3]["scenes"]["scan63"], res[3]["scenes"]["Amplifier"]
    assert scan["scored_views"] == 2 and scan["psnr_masked"] is not None and scan["ssim_box"] is not None
    assert amp["scored_views"] == 1, "view 7's photo is hidden: rendered, not scored"
    sub = tmp_path / "out" / "submission"
    names = sorted(str(p.relative_to(sub)) for p in sub.rglob("*.png"))
    assert names == ["Amplifier/cam_002_3_0000.png", "Amplifier/cam_008_3_0000.png",
                     "scan63/rect_002_3_r5000.png", "scan63/rect_006_3_r5000.png"]
    assert all(Image.open(sub / n).size == (1600, 1200) for n in names)
    with zipfile.ZipFile(sub / "submission.zip") as z:
        assert sorted(z.namelist()) == names, "scene folders at the archive's root"
    # the submission render and the scored (native-size) render show the same thing
    big = np.asarray(Image.open(sub / "scan63" / "rect_002_3_r5000.png").resize((48, 36), Image.BOX), np.float32)
    small = np.asarray(Image.open(tmp_path / "out" / "scan63" / "test" / "001.png"), np.float32)
    assert np.abs(big - small).mean() < 12


def test_unknown_scene_and_submission_misuse_are_one_line_errors(tmp_path, mixed_root, capsys):
    assert main(["eval", "--protocol", "llff", "--data", str(mixed_root), "--scenes", "nope",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "fern" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--protocol", "llff", "--data", str(mixed_root), "--submission", "--out", str(tmp_path)]) == 2
    assert "spare" in capsys.readouterr().err


def test_ray_flag_takes_an_optional_address():
    import tyro

    from recon.eval.command import Eval

    def parse(*args: str) -> Eval:
        return tyro.cli(Eval, args=["--data", ".", *args])

    assert parse().ray is None, "local by default"
    assert parse("--ray").ray == (), "a local Ray (or $RAY_ADDRESS)"
    assert parse("--ray", "auto", "--views", "3", "6").ray == ("auto",)
    assert parse("--views", "3", "6", "9").views == (3, 6, 9)
