"""The time estimate `recon run` says at the start: it grows with steps and pixels, and counts only
the stages that will do work."""

from __future__ import annotations

from recon.estimate import describe, estimate_seconds

from synthetic import synthetic_scene


def test_the_estimate_counts_what_will_run():
    small, large = synthetic_scene(3, 400, 300), synthetic_scene(3, 800, 600)
    posed = estimate_seconds(small, 1000, "cpu", posed=True)
    assert posed["poses"] == 0 and posed["init"] > 0
    photos = estimate_seconds(small, 1000, "cpu", posed=False)
    assert photos["poses"] > 0 and photos["init"] == 0, "SfM points seed photos: no stereo init"
    seeded = estimate_seconds(small, 1000, "cpu", posed=False, seeds=True)  # init.method seeds (the fast preset)
    assert seeded["poses"] == photos["poses"] and seeded["init"] == posed["init"] > 0
    assert estimate_seconds(small, 2000, "cpu", True)["optimize"] > 1.9 * posed["optimize"]
    assert estimate_seconds(large, 1000, "cpu", True)["optimize"] > posed["optimize"]
    assert estimate_seconds(small, 1000, "cuda", True)["optimize"] < posed["optimize"]
    line = describe(small, 1000, "cuda", True)
    assert line.startswith("estimate: about") and "untested" in line
