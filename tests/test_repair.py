"""The weights-free repairer and the pseudo cameras: on a synthetic blob rendered from known
cameras (the ground-truth splat gives the depth), reprojecting the other photos reproduces a
held-out view, and the confidence is low where the view sees what no photo saw."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon.gaussians import rgb_to_sh0
from recon.repair.cameras import nearest_sources, orbit, pivot_of, pseudo_cameras
from recon.repair.photo_reprojection import ReprojectConfig, ReprojectionRepairer
from recon.stages.repair import rendered, sources_of
from recon.train import OptimizeConfig, Trainer

from synthetic import colored_blob, render_scene, ring_cameras

W, H = 96, 72


def exact(scene, g):
    """A Trainer that holds the ground-truth splat itself (no steps): its renders are the truth."""
    return Trainer(OptimizeConfig(steps=0, backend="cpu", stream_every_s=1e9), scene, g)


def repair_from(scene, g, cam, cfg=ReprojectConfig()):
    trainer = exact(scene, g)
    sources = sources_of(trainer, scene)
    order = nearest_sources(cam, scene.cameras, len(scene.cameras))
    return ReprojectionRepairer(cfg).repair(rendered(trainer, cam), [sources[i] for i in order])


def psnr(a, b):
    return float(-10 * np.log10(np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def blob():
    return colored_blob(600)


def test_reprojection_reproduces_a_held_out_view(blob):
    cams = ring_cameras(8, W, H)
    scene = render_scene(blob, cams)
    held = scene.views[1]
    rep = repair_from(scene.subset([0, 2, 3, 4, 5, 6, 7]), blob, held.camera)
    sure = rep.confidence > 0
    obj = held.mask
    # Measured 27.9 dB over the pixels it is confident about, which are 2/3 of the object.
    assert psnr(rep.image[sure], held.image[sure]) > 25.0
    assert (sure & obj).sum() > 0.6 * obj.sum()
    # The agreeing photos make the target: better than the nearest photo itself, seen as is.
    assert psnr(rep.image[sure], held.image[sure]) > psnr(scene.views[0].image[sure], held.image[sure]) + 5


def test_low_confidence_where_the_view_sees_what_no_photo_saw(blob):
    """Photos from one side (-30°, 0°, +30°); the pseudo view looks from 90°, half at the side the
    photos saw and half at the back none of them did."""
    cams = ring_cameras(12, W, H)
    scene = render_scene(blob, cams).subset([11, 0, 1])
    side = cams[3]
    rep = repair_from(scene, blob, side)
    # Which pixels show the back (x < -0.2, facing away from all three photos) or the front (x > 0.3).
    means = blob.means
    labels = blob.detach()
    colour = torch.stack([(means[:, 0] < -0.2).float(), (means[:, 0] > 0.3).float(), torch.zeros(len(means))], 1)
    labels.sh0 = rgb_to_sh0(colour)[:, None]
    label = render_scene(labels, [side]).views[0].image
    back, front = label[..., 0] > 0.8, label[..., 1] > 0.8
    assert back.sum() > 50 and front.sum() > 50
    assert rep.confidence[back].mean() < 0.05
    assert rep.confidence[front].mean() > 0.25


def test_photos_that_disagree_lower_the_confidence(blob):
    """The same held-out view, but one source photo's colours are wrong: where it is the only
    other photo that sees a pixel, the vote has nobody to agree with."""
    cams = ring_cameras(8, W, H)
    scene = render_scene(blob, cams)
    train = scene.subset([0, 2])
    good = repair_from(train, blob, cams[1])
    bad = dataclasses.replace(train, views=[train.views[0], dataclasses.replace(
        train.views[1], image=np.ascontiguousarray(1 - train.views[1].image))])
    worse = repair_from(bad, blob, cams[1])
    both = (good.confidence > 0.9)  # seen by both photos, which agreed
    assert both.sum() > 20
    assert worse.confidence[both].mean() < 0.5 * good.confidence[both].mean()


def test_pseudo_cameras_go_farther_in_later_rounds_and_keep_the_object_in_view():
    cams = ring_cameras(6, W, H)[:3]  # three cameras 60° apart
    centre = np.zeros(3)
    rounds = [pseudo_cameras(cams, centre, r, 3, 6) for r in range(3)]
    assert all(len(r) == 6 for r in rounds)
    dist = [np.mean([min(np.linalg.norm(c.center - t.center) for t in cams) for c in r]) for r in rounds]
    assert dist[0] < dist[1] < dist[2], dist
    for r in rounds:
        for c in r:
            pix, z = c.project(centre[None])  # the scene centre stays in front, near the image centre
            assert z[0] > 0 and abs(pix[0, 0] - W / 2) < W / 4 and abs(pix[0, 1] - H / 2) < H / 4
    # the first moves go toward a neighbour: between two training cameras
    a = cams[0]
    first = rounds[0][0]
    assert np.linalg.norm(first.center - cams[1].center) < np.linalg.norm(a.center - cams[1].center)
    assert pseudo_cameras(cams, centre, 0, 2, 4, scale=0.5)[0].width == W // 2


def test_an_orbit_keeps_what_the_camera_sees():
    cam = ring_cameras(4, W, H)[0]
    p = pivot_of(cam, np.zeros(3))
    moved = orbit(cam, p, np.array([0.0, 0.0, 1.0]), 0.3)
    X = np.array([[0.3, -0.2, 0.1]])
    from recon.repair.cameras import rotation

    Xr = p + (rotation(np.array([0.0, 0.0, 1.0]), 0.3) @ (X[0] - p))
    assert np.allclose(cam.project(X)[0], moved.project(Xr[None])[0], atol=1e-6)
