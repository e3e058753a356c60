"""The people part (recon/filters/people.py, `filters.people on`): OpenCV's built-in pedestrian
detector finds a person-shaped figure made here and GrabCut cuts its outline, so the trust map
loses the person and keeps the background around it; off, nothing is run."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")

from recon.events import Observer  # noqa: E402
from recon.filters.people import PeopleConfig, detect_people, people_trust  # noqa: E402
from recon.stages.filters import FiltersConfig, check_config, run_filters  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from corrupt import _person  # noqa: E402

from test_filters import clean_scene  # noqa: E402
from synthetic import colored_blob  # noqa: E402


def street(H: int = 300, W: int = 400, height: float = 160) -> tuple[np.ndarray, np.ndarray]:
    """(a pale textured wall with a dark standing person [H,W,3], the person [H,W] bool)."""
    rng = np.random.default_rng(0)
    sil = _person((H, W), rng, np.array([0.5 * W, 0.93 * H]), height)
    img = np.full((H, W, 3), 0.8) + 0.03 * rng.standard_normal((H, W, 3))
    img[sil] = (0.2, 0.25, 0.3)
    return np.clip(img, 0, 1).astype(np.float32), sil


def test_a_person_is_found_and_cut_to_its_outline():
    img, sil = street()
    found = detect_people(img, PeopleConfig())
    assert found, "the pedestrian detector finds a clear standing figure"
    trust, n = people_trust(img, PeopleConfig())
    assert n >= 1
    assert np.mean(trust[sil] == 0) >= 0.8, f"the person distrusted: {np.mean(trust[sil] == 0):.2f}"
    x, y, w, h = found[0][0]
    box = np.zeros_like(sil)
    box[y:y + h, x:x + w] = True
    around = box & ~sil
    assert np.mean(trust[around] == 1) >= 0.6, "GrabCut keeps the wall inside the box, not the whole box"


def test_an_empty_wall_has_nobody():
    img, _ = street(height=0.0)
    trust, n = people_trust(img, PeopleConfig())
    assert n == 0 and trust.min() == 1.0


def test_the_stage_runs_it_only_when_asked():
    scene = clean_scene(colored_blob(500))
    img, _ = street(72, 96, 60)
    scene.views[0] = dataclasses.replace(scene.views[0], image=img)

    class Log(Observer):
        lines: list[str] = []

        def log(self, message: str) -> None:
            self.lines.append(message)

    run_filters(FiltersConfig(mode="on", weather="off", haze="off", photo_consistency=False), scene, "unused", Log())
    assert not any("people" in line for line in Log.lines)
    check_config(FiltersConfig(people="on", people_fit=PeopleConfig(min_score=1.0)))
    run_filters(FiltersConfig(mode="on", weather="off", haze="off", photo_consistency=False, people="on"),
                scene, "unused", Log())
    assert any(line.startswith("filters: people (") for line in Log.lines), Log.lines


def test_its_settings_without_the_switch_are_refused():
    from recon.errors import ReconError

    with pytest.raises(ReconError, match="filters.people-fit"):
        check_config(FiltersConfig(people_fit=PeopleConfig(min_score=1.0)))
