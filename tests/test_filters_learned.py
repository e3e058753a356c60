"""Learned filters (issue 17, item 2), plumbing only: a tiny random SegFormer built and saved here
loads from its folder, its labels become trust 0 exactly where the model says so, the stage logs
that the learned filter ran, and bad models or classes stop in one line. Random weights: nothing
here says how well a real segmenter removes people (unmeasured, no such weights on this disk)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("transformers")

from recon.errors import ReconError
from recon.events import Observer
from recon.filters.learned import SegmenterConfig, SegmenterFilter
from recon.scene import Camera, Scene, View
from recon.stages.filters import FiltersConfig, check_config, run_filters

from synthetic import look_at


@pytest.fixture(scope="module")
def tiny_segmenter(tmp_path_factory):
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessorPil

    labels = {0: "wall", 1: "person;individual;someone", 2: "car", 3: "tree"}
    cfg = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                          patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2],
                          decoder_hidden_size=16, num_labels=4, id2label=labels,
                          label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_segformer")
    SegformerForSemanticSegmentation(cfg).save_pretrained(folder)
    SegformerImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _image(seed: int = 0, h: int = 40, w: int = 56) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(h, w, 3)).astype(np.float32)


def test_trust_is_zero_exactly_on_the_named_classes(tiny_segmenter):
    seg = SegmenterFilter(SegmenterConfig(model=str(tiny_segmenter), classes=("person", "car"), dilate=0))
    assert seg.ids == [1, 2] and "person" in seg.name  # "person" matched one of the label's synonyms
    img = _image()
    labels = seg.labels(img)
    assert labels.shape == img.shape[:2] and len(np.unique(labels)) > 1, "random weights still vary per pixel"
    trust = seg.trust(img)
    np.testing.assert_array_equal(trust == 0, np.isin(labels, [1, 2]))
    grown = SegmenterFilter(SegmenterConfig(model=str(tiny_segmenter), classes=("person", "car"), dilate=2)).trust(img)
    assert (grown == 0).sum() > (trust == 0).sum() and np.all(grown[trust == 0] == 0), "dilation only grows"


def test_the_stage_multiplies_the_learned_trust_in_and_says_so(tiny_segmenter, tmp_path):
    K = np.array([[40.0, 0, 28], [0, 40.0, 20], [0, 0, 1]])
    views = [View(f"v{i}", i, Camera(K, look_at(np.array([3.0, i - 1.0, 0.5]), np.zeros(3)), 56, 40), _image(i))
             for i in range(3)]
    lines: list[str] = []

    class Log(Observer):
        def log(self, message: str) -> None:
            lines.append(message)

    cfg = FiltersConfig(mode="on", weather="off", haze="off", photo_consistency=False,
                        segmenter=SegmenterConfig(model=str(tiny_segmenter), classes=("car",), dilate=0))
    check_config(cfg)
    plan = run_filters(cfg, Scene(views), tmp_path, Log()).meta["filters"]
    seg = SegmenterFilter(cfg.segmenter)
    for v, t in zip(views, plan.trust):
        np.testing.assert_array_equal(t, seg.trust(v.image))
    assert any("learned filter ran: segmenter" in line for line in lines), lines
    lines.clear()
    run_filters(dataclasses.replace(cfg, segmenter=SegmenterConfig()), Scene(views), tmp_path, Log())
    assert any("occluders: weights-free robust weights" in line for line in lines), "the log says the weights-free one ran"


def test_bad_models_and_classes_stop_in_one_line(tiny_segmenter, tmp_path):
    with pytest.raises(ReconError, match="not on this disk"):
        check_config(FiltersConfig(mode="on", segmenter=SegmenterConfig(model=str(tmp_path / "nothing"))))
    with pytest.raises(ReconError, match="segmenter.model is off"):
        check_config(FiltersConfig(mode="on", segmenter=SegmenterConfig(classes=("person",), dilate=1)))
    with pytest.raises(ReconError, match="none of dog is a label.*wall"):
        SegmenterFilter(SegmenterConfig(model=str(tiny_segmenter), classes=("dog",)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReconError, match="not a semantic-segmentation model"):
        SegmenterFilter(SegmenterConfig(model=str(tmp_path / "empty")))
