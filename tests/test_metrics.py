"""Metrics on hand-made images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from recon.eval.metrics import Lpips, masked_psnr, psnr, ssim


def test_psnr_known_value():
    a = np.zeros((4, 4, 3), np.float32)
    b = np.full((4, 4, 3), 0.1, np.float32)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)  # mse 0.01


def test_masked_psnr_counts_only_object_pixels():
    gt = np.zeros((4, 4, 3), np.float32)
    pred = gt.copy()
    pred[:2] = 1.0  # wrong everywhere in the top half
    mask = np.zeros((4, 4), bool)
    mask[2:] = True  # the object is the (perfect) bottom half
    assert masked_psnr(pred, gt, mask) == float("inf")
    pred[3, 3] = 0.1  # one of 8 object pixels off by 0.1 → mse = 0.01/8
    assert masked_psnr(pred, gt, mask) == pytest.approx(-10 * np.log10(0.01 / 8), abs=1e-4)
    with pytest.raises(ValueError):
        masked_psnr(pred, gt, np.zeros((4, 4), bool))


def test_ssim_identity_and_degradation():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32, 3)).astype(np.float32)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-5)
    assert ssim(img, np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1).astype(np.float32)) < 0.9


def test_lpips_is_never_a_number_from_random_weights():
    lp = Lpips()
    img = np.zeros((32, 32, 3), np.float32)
    if lp.available:  # only where real weights are on disk
        assert lp(img, img) == pytest.approx(0.0, abs=1e-3)
    else:
        assert lp(img, img) is None and "unavailable" in lp.reason
