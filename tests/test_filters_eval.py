"""The filters' trust maps in `recon eval`'s contact sheet (issue 17: "the eval contact sheet shows them")."""

from __future__ import annotations

import numpy as np

from recon.eval.evaluate import _write_contact
from recon.eval.protocols import Prepared, Split
from recon.io.images import load_image
from recon.scene import Scene, View

from synthetic import ring_cameras


def _prepared(n_train: int = 3, n_test: int = 2) -> tuple[Prepared, dict[int, np.ndarray]]:
    cams = ring_cameras(n_train + n_test)
    views = [View(f"v{i}", i, c, np.full((c.height, c.width, 3), 0.8, np.float32)) for i, c in enumerate(cams)]
    train, test = Scene(views[:n_train]), Scene(views[n_train:])
    split = Split(train=list(range(n_train)), test=list(range(n_train, n_train + n_test)))
    prep = Prepared(train=train, test_cameras={v.index: v.camera for v in test.views},
                    gt={v.index: v for v in test.views}, split=split)
    return prep, {v.index: np.zeros_like(v.image) for v in test.views}


def test_contact_sheet_has_a_row_of_trust_maps_with_the_distrusted_pixels_red(tmp_path):
    prep, renders = _prepared()
    _write_contact(tmp_path / "plain.png", renders, prep, height=40)
    h, w = prep.train.views[0].image.shape[:2]
    trust = [np.ones((h, w), np.float32) for _ in prep.train.views]
    trust[0][:, : w // 2] = 0.0  # the left half of the first training view is not trusted
    _write_contact(tmp_path / "trust.png", renders, prep, trust=trust, height=40)
    plain, sheet = load_image(tmp_path / "plain.png"), load_image(tmp_path / "trust.png")
    assert plain.shape[0] == 80 and sheet.shape[0] == 80 + 4 + 40, "one more row, 40 px high, below a gutter"
    row = sheet[84:]
    tile_w = round(w * 40 / h)
    left, right = row[:, : tile_w // 2 - 2], row[:, tile_w // 2 + 2: tile_w]
    assert left[..., 0].mean() > 0.8 and left[..., 1].mean() < 0.5, "distrusted: red"
    np.testing.assert_allclose(right, 0.8, atol=0.01)  # trusted: the photo as it is


def test_eval_with_filters_on_puts_the_trust_row_in_the_contact_sheet(tmp_path):
    from recon.cli import main

    from test_batch import TINY_FLAGS
    from test_eval_layouts import write_regnerf_dtu

    root = write_regnerf_dtu(tmp_path / "dtu", scans=(8,))
    heights = {}
    for name, flags in (("off", []), ("on", ["--config.filters.mode", "on"])):
        out = tmp_path / name
        assert main(["eval", "--protocol", "dtu", "--data", str(root), "--views", "3", "--out", str(out),
                     *TINY_FLAGS, *flags]) == 0
        heights[name] = load_image(out / "scan8" / "contact.png").shape[0]
    assert (tmp_path / "on" / "scan8" / "run" / "filters" / "contact.png").is_file()
    assert heights["on"] == heights["off"] + 4 + 120
