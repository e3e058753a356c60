"""COLMAP's INFO lines stay off the console while recon poses photos (a run printed ~500 of them
for 10 photos), and the logging level is put back afterwards, also when mapping fails."""

from __future__ import annotations

import pytest

pycolmap = pytest.importorskip("pycolmap")

from recon.poses.sfm import _quiet_colmap  # noqa: E402


def test_colmap_info_lines_are_off_inside_and_the_level_is_restored():
    before = pycolmap.logging.minloglevel
    with _quiet_colmap():
        assert pycolmap.logging.minloglevel == int(pycolmap.logging.WARNING)
    assert pycolmap.logging.minloglevel == before
    with pytest.raises(RuntimeError), _quiet_colmap():
        raise RuntimeError("mapping failed")
    assert pycolmap.logging.minloglevel == before
