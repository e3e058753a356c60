"""Metrics inside masks and boxes on hand-made images with known answers (DTU's RegNeRF metrics,
the SpaRe challenge's mask/box metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from recon.eval.metrics import Lpips, box_ssim, crop, mask_box, on_background, ssim
from recon.eval.registry import make_protocol
from recon.scene import Camera, View


def _view(image: np.ndarray, mask: np.ndarray) -> View:
    h, w = image.shape[:2]
    return View("gt", 0, Camera(np.eye(3), np.eye(4), w, h), image.astype(np.float32), mask)


@pytest.fixture
def pair():
    """A 40×60 photo with a 10×20 object at rows 15..24, cols 20..39, and a render that is exact
    on the object and wrong (0.5 off) everywhere else."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.2, 0.8, (40, 60, 3)).astype(np.float32)
    mask = np.zeros((40, 60), bool)
    mask[15:25, 20:40] = True
    pred = gt.copy()
    pred[~mask] = np.clip(gt[~mask] + 0.5, 0, 1)
    return pred, gt, mask


def test_mask_box_is_tight_and_fits_the_ssim_window():
    m = np.zeros((40, 60), bool)
    m[15:25, 20:40] = True
    assert mask_box(m) == (15, 26, 20, 40), "10 rows widen to 11 (SSIM's window); 20 cols stay"
    m[:] = False
    m[0, 59] = True  # one pixel in a corner: an 11×11 box inside the image
    assert mask_box(m) == (0, 11, 49, 60)
    with pytest.raises(ValueError):
        mask_box(np.zeros((5, 5), bool))


def test_on_background_whitens_only_outside_the_mask(pair):
    pred, gt, mask = pair
    white = on_background(pred, mask, 1.0)
    assert np.all(white[~mask] == 1.0) and np.array_equal(white[mask], pred[mask])


def test_dtu_metrics_ignore_the_background_like_regnerf(pair):
    pred, gt, mask = pair
    s = make_protocol("dtu").score(pred, _view(gt, mask), Lpips())
    assert s["psnr_masked"] == float("inf"), "exact on every object pixel"
    assert s["ssim_masked"] == pytest.approx(1.0, abs=1e-6), "background whitened in both images"
    # full image: the clipped 0.5 offsets on the background give a known MSE
    diff = (pred.astype(np.float64) - gt) ** 2
    assert s["psnr"] == pytest.approx(-10 * np.log10(diff.mean()), abs=1e-6)
    assert s["ssim"] < 0.9
    # one object pixel off by 0.1 in every channel: mse = 0.01 / (object pixels)
    pred2 = pred.copy()
    pred2[20, 30] = gt[20, 30] + 0.1
    s2 = make_protocol("dtu").score(pred2, _view(gt, mask), Lpips())
    assert s2["psnr_masked"] == pytest.approx(-10 * np.log10(0.01 / mask.sum()), abs=1e-4)


def test_spare_box_metrics(pair):
    pred, gt, mask = pair
    spare = make_protocol("spare")
    s = spare.score(pred, _view(gt, mask), Lpips())
    assert s["psnr_masked"] == float("inf")
    # the box (rows 15..25) includes one background row below the object, which is wrong in pred
    box = mask_box(mask)
    assert s["ssim_box"] == pytest.approx(ssim(crop(pred, box), crop(gt, box)), abs=1e-7)
    assert s["ssim"] < s["ssim_box"] < 1.0
    # errors outside the box do not count at all
    pred3 = gt.copy()
    pred3[:5] = 0.0
    assert box_ssim(pred3, gt, mask) == pytest.approx(1.0, abs=1e-6)
    assert spare.score(pred3, _view(gt, mask), Lpips())["ssim_box"] == pytest.approx(1.0, abs=1e-6)
    # no mask: the mask/box metrics are null, never a full-image stand-in
    s4 = spare.score(pred, _view(gt, None), Lpips())
    assert s4["psnr_masked"] is None and s4["ssim_box"] is None and s4["psnr"] is not None


def test_lpips_box_is_null_without_local_weights(pair):
    pred, gt, mask = pair
    lp = Lpips()
    s = make_protocol("spare").score(pred, _view(gt, mask), lp)
    if lp.available:  # a machine with the weights on disk
        assert 0 <= s["lpips_box"] < s["lpips"]
    else:
        assert s["lpips"] is None and s["lpips_box"] is None
