"""People found by OpenCV's built-in pedestrian detector, their outlines cut out by GrabCut.

No person segmenter ships its weights on this disk, but OpenCV's wheel carries a HOG + linear SVM
pedestrian detector inside the library (Dalal & Triggs; nothing downloaded). It scores 64×128
windows of gradient histograms, so photos are enlarged until a person 30 px tall spans a window
(tourists on steps are 10–40 px tall in a 1000 px photo). Each box it returns above `min_score`
is cut to the person's outline by GrabCut, started from the box (inside: probably the person,
outside: background), so the trust map loses the person, not the whole box.

Measured on sacre_coeur_crowds (docs/benchmarks.md, Filters on tourist photos): the detector also
scores spires, statues and arches as people (HOG sees a tall shape with a head), and finds a few
of the dozens of people in a crowd, so this part is off unless asked for (`filters.people on`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PeopleConfig:
    min_score: float = 0.5
    """Smallest SVM score a detection keeps (OpenCV's default people detector; about 2 on a clear
    silhouette, 0.5–1 on a person in a crowd, up to 2.2 on a spire)."""
    min_height_px: int = 30
    """Photos are enlarged so a person this tall fills the detector's 128 px window, up to
    `max_side` pixels on the long side."""
    max_side: int = 2000
    grabcut_iters: int = 3
    """GrabCut rounds per box (0: distrust the whole box)."""


def _detector():
    import cv2

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def detect_people(image: np.ndarray, cfg: PeopleConfig) -> list[tuple[tuple[int, int, int, int], float]]:
    """[((x, y, w, h) in the photo's pixels, score)] of the people in `image` [H,W,3] in [0,1]."""
    import cv2

    H, W = image.shape[:2]
    scale = min(128 / cfg.min_height_px, cfg.max_side / max(H, W))
    scale = max(scale, 1.0)
    u8 = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    big = cv2.resize(u8, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else u8
    rects, scores = _detector().detectMultiScale(cv2.cvtColor(big, cv2.COLOR_RGB2GRAY), winStride=(8, 8),
                                                 padding=(8, 8), scale=1.05)
    out = []
    for (x, y, w, h), s in zip(rects, np.ravel(scores)):
        if s >= cfg.min_score:
            box = (int(x / scale), int(y / scale), max(1, int(round(w / scale))), max(1, int(round(h / scale))))
            out.append((box, float(s)))
    return out


def person_mask(image: np.ndarray, box: tuple[int, int, int, int], iters: int) -> np.ndarray:
    """[H,W] bool: the person inside `box` (x, y, w, h), cut out by GrabCut (the whole box with
    iters 0, or when GrabCut finds no foreground)."""
    import cv2

    H, W = image.shape[:2]
    x, y, w, h = box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    full = np.zeros((H, W), bool)
    full[y0:y1, x0:x1] = True
    if iters <= 0 or x1 - x0 < 4 or y1 - y0 < 4:
        return full
    u8 = np.ascontiguousarray(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)[..., ::-1])  # BGR
    mask = np.zeros((H, W), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(u8, mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iters, cv2.GC_INIT_WITH_RECT)
    person = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    return person if person.any() else full


def people_trust(image: np.ndarray, cfg: PeopleConfig) -> tuple[np.ndarray, int]:
    """(trust [H,W] float32, 0 on the people found and 1 elsewhere; how many were found)."""
    found = detect_people(image, cfg)
    gone = np.zeros(image.shape[:2], bool)
    for box, _ in found:
        gone |= person_mask(image, box, cfg.grabcut_iters)
    return (~gone).astype(np.float32), len(found)
