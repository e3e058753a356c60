"""The filters' default mode, auto (recon/stages/filters.py): the cheap detectors run on every
photo set and switch on only what finds something. On a small synthetic scene made here: clean
photos go to training as they came (no plan, a log line saying why); a person-shaped occluder
pasted into one view switches on trust maps and robust weights, and its whole silhouette, not
only its outline, gets trust 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recon.events import Observer
from recon.stages.filters import FiltersConfig, run_filters

from synthetic import colored_blob
from test_filters import H, W, clean_scene


class Log(Observer):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def truth():
    return colored_blob(500)


def person(cx: float, foot: float, height: float) -> np.ndarray:
    """[H,W] bool: a head, a body and two legs standing at (cx, foot)."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    top = foot - height
    head = np.hypot(xx - cx, yy - (top + 0.09 * height)) < 0.09 * height
    body = (yy > top + 0.18 * height) & (yy < foot - 0.45 * height) & (np.abs(xx - cx) < 0.14 * height)
    legs = (yy >= foot - 0.45 * height) & (yy < foot) & (np.abs(np.abs(xx - cx) - 0.07 * height) < 0.05 * height)
    return head | body | legs


def test_clean_photos_pass_through_and_the_log_says_why(truth):
    scene = clean_scene(truth)
    log = Log()
    out = run_filters(FiltersConfig(), scene, "unused", log)
    assert "filters" not in out.meta, "nothing found: no filter plan, the photos go to training as they are"
    assert any("filters auto: no occluders" in line for line in log.lines), log.lines
    assert any("nothing to filter" in line for line in log.lines), log.lines


@pytest.mark.parametrize("textured", [False, True])
def test_a_pasted_person_is_found_and_distrusted_whole(truth, textured):
    scene = clean_scene(truth)
    sil = person(W * 0.5, H * 0.9, H * 0.7)
    img = scene.views[1].image.copy()
    rng = np.random.default_rng(5)
    img[sil] = rng.uniform(0.2, 0.9, (int(sil.sum()), 3)) if textured else np.array([0.2, 0.5, 0.85])
    scene.views[1] = dataclasses.replace(scene.views[1], image=img.astype(np.float32))
    log = Log()
    plan = run_filters(FiltersConfig(), scene, "unused", log).meta["filters"]
    assert plan.robust is not None, "occluders found: the robust weights go on with the trust maps"
    trust = plan.trust[1]
    assert np.mean(trust[sil] < 0.5) >= 0.95, f"the person's pixels distrusted: {np.mean(trust[sil] < 0.5):.2f}"
    assert np.mean(trust[~sil] > 0.5) >= 0.85, f"the rest kept: {np.mean(trust[~sil] > 0.5):.2f}"
    assert any("filters auto: found occluders" in line and scene.views[1].name in line for line in log.lines), log.lines
