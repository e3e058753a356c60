"""Photo consistency before training (recon/filters/consistency.py): on a small synthetic scene
made here, an occluder pasted into one of four views is what no other photo explains at any
depth, while the clean pixels of every view are explained; the stage multiplies it into the
trust it hands the Trainer and says so."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recon.events import Observer
from recon.filters.consistency import ConsistencyConfig, interior_share, solid_mask, unexplained
from recon.stages.filters import FiltersConfig, check_config, run_filters
from recon.stages.init import depth_range

from synthetic import colored_blob
from test_filters import BOX, H, W, clean_scene


@pytest.fixture(scope="module")
def truth():
    return colored_blob(500)


def _pasted(truth, textured: bool):
    scene = clean_scene(truth)
    img = scene.views[1].image.copy()
    if textured:  # a patterned thing, not a flat colour: patches must not match anywhere either
        rng = np.random.default_rng(3)
        img[BOX] = rng.uniform(0.2, 0.9, size=img[BOX].shape).astype(np.float32)
    else:
        img[BOX] = np.array([0.15, 0.6, 0.2], np.float32)
    scene.views[1] = dataclasses.replace(scene.views[1], image=img)
    return scene


@pytest.mark.parametrize("textured", [False, True])
def test_an_occluder_in_one_view_is_unexplained_and_the_clean_pixels_are_not(truth, textured):
    scene = _pasted(truth, textured)
    near, far = depth_range(scene)
    maps = unexplained(scene, near, far, ConsistencyConfig())
    occ = np.zeros((H, W), bool)
    occ[BOX] = True
    inner = np.zeros_like(occ)
    inner[BOX[0].start + 2: BOX[0].stop - 2, BOX[1].start + 2: BOX[1].stop - 2] = True  # the patch's edge blurs
    assert np.mean(maps[1][inner] > 0.5) >= 0.9, f"occluder pixels unexplained: {np.mean(maps[1][inner] > 0.5):.2f}"
    clean = np.concatenate([maps[1][~occ]] + [maps[i].ravel() for i in (0, 2, 3)])
    assert np.mean(clean < 0.5) >= 0.95, f"clean pixels explained: {np.mean(clean < 0.5):.3f}"


def test_the_stage_multiplies_it_into_the_trust_and_logs_it(truth):
    scene = _pasted(truth, textured=False)
    lines: list[str] = []

    class Log(Observer):
        def log(self, message: str) -> None:
            lines.append(message)

    cfg = FiltersConfig(mode="on", weather="off", haze="off", transients=False, photo_consistency=True)
    check_config(cfg)
    plan = run_filters(cfg, scene, "unused", Log()).meta["filters"]
    near, far = depth_range(scene)
    expected = unexplained(scene, near, far, cfg.consistency)
    for t, m in zip(plan.trust, expected):  # whole regions at 0 (solid), the rest at 1
        np.testing.assert_array_equal(t, (~solid_mask(m, cfg.consistency)).astype(np.float32))
    soft = run_filters(dataclasses.replace(cfg, consistency=ConsistencyConfig(solid=False)), scene, "unused",
                       Observer()).meta["filters"]
    for t, m in zip(soft.trust, expected):
        np.testing.assert_allclose(t, 1 - m, atol=1e-6)
    assert any("photo consistency" in line and "no other photo explains" in line for line in lines), lines
    off = run_filters(dataclasses.replace(cfg, photo_consistency=False), scene, "unused", Observer()).meta["filters"]
    assert all(t is None for t in off.trust), "off: no prior trust from it"


def test_its_settings_without_the_switch_are_refused():
    from recon.errors import ReconError

    with pytest.raises(ReconError, match="photo-consistency is off"):
        check_config(FiltersConfig(mode="on", photo_consistency=False, consistency=ConsistencyConfig(k=2.0)))


def test_bad_sweep_settings_are_refused_and_neighbours_bound_the_views_used(truth):
    from recon.errors import ReconError
    from recon.filters.consistency import best_cost

    for bad in (ConsistencyConfig(neighbours=0), ConsistencyConfig(patch=4)):
        with pytest.raises(ReconError, match="consistency"):
            check_config(FiltersConfig(mode="on", consistency=bad))
    scene = clean_scene(truth)
    near, far = depth_range(scene)
    one = best_cost(scene, 0, near, far, ConsistencyConfig(neighbours=1))
    every = best_cost(scene, 0, near, far, ConsistencyConfig(neighbours=3))
    # More views see more of the view's pixels and explain them better (the planes differ with
    # the widest baseline, so this holds on the whole, not pixel by pixel).
    import torch

    assert int(torch.isfinite(every).sum()) > int(torch.isfinite(one).sum())
    assert float(every[torch.isfinite(every)].mean()) < float(one[torch.isfinite(one)].mean())


def test_solid_mask_fills_an_outline_and_drops_speckle():
    yy, xx = np.mgrid[0:80, 0:80]
    r = np.hypot(yy - 40, xx - 40)
    score = ((r > 14) & (r < 18)).astype(np.float32)  # the outline of a flat thing: only its edge mismatches
    score[5, 5] = 1.0  # a lone glint
    solid = solid_mask(score, ConsistencyConfig())
    assert solid[r < 14].all(), "the inside of the outline is distrusted with it"
    assert not solid[:10, :10].any(), "a lone pixel is noise, not an occluder"
    assert not solid[r > 24].any(), "grown by a margin only"


def test_interior_share_ignores_the_frame_edge_and_thin_lines():
    score = np.zeros((100, 100), np.float32)
    score[:, :20] = 1  # touches the frame's edge: where the other frames end
    score[50, 30:90] = 1  # one pixel thin: a specular edge
    assert interior_share(score) == 0.0
    score[40:60, 40:60] = 1  # a compact blob inside the frame
    assert interior_share(score) == pytest.approx(0.04, abs=0.005)
