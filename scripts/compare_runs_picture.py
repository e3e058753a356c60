"""A picture that puts two runs of the same photos side by side at their training cameras:
photo | run A's render | run B's render | B's trust map (when B ran the filters).

    python scripts/compare_runs_picture.py RUN_A RUN_B OUT.png [--views 0 3 7] [--height 200]

Made for the filters on real photos (issue 17: sacre_coeur_crowds with the filters off and on),
where the question is whether the people are gone from the render and the building kept.
Both runs must share their cameras (B made from a copy of A's folder, so its poses are A's).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--views", type=int, nargs="*", help="training view numbers (default: up to 4, spread)")
    ap.add_argument("--height", type=int, default=200, help="pixels per tile")
    args = ap.parse_args()

    from recon.io.images import load_image, save_image
    from recon.render.views import render_view

    view = importlib.import_module("recon_viewer.view")  # the module; the package exports a function of that name
    a, b = view.load(args.run_a), view.load(args.run_b)
    if len(a.cameras) != len(b.cameras) or not a.cameras:
        raise SystemExit(f"{args.run_a} and {args.run_b} do not have the same training cameras")
    n = len(a.cameras)
    picks = args.views if args.views else sorted({int(round(x)) for x in np.linspace(0, n - 1, min(4, n))})
    names = camera_names(args.run_b)
    rows = []
    for i in picks:
        cam, photo = a.cameras[i], a.images[i]
        if photo is not None and photo.dtype == np.uint8:  # the viewer keeps its thumbnails as bytes
            photo = photo.astype(np.float32) / 255
        tiles = [photo if photo is not None else np.zeros((cam.height, cam.width, 3), np.float32)]
        tiles += [np.clip(render_view(g, cam, "cpu", "cpu"), 0, 1) for g in (a.gaussians, b.gaussians)]
        trust_file = args.run_b / "filters" / f"{names[i]}.png" if i < len(names) else None
        if trust_file is not None and trust_file.is_file():  # photo | trust | removed: the middle third
            panel = load_image(trust_file)
            w = panel.shape[1] // 3
            trust = panel[:, w: 2 * w]
            tiles.append(np.asarray(_resize(trust, cam.width, cam.height)))
        w = max(1, round(cam.width * args.height / cam.height))  # portrait and landscape photos alike
        gutter = np.ones((args.height, 4, 3), np.float32)
        rows.append(np.concatenate([x for t in tiles for x in (_resize(t, w, args.height), gutter)][:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    save_image(args.out, np.concatenate(sheet, axis=0))
    print(f"wrote {args.out}: views {picks}, photo | {args.run_a.name} | {args.run_b.name}"
          + (" | trust" if (args.run_b / "filters").is_dir() else ""))


def camera_names(run: Path) -> list[str]:
    """The view names of RUN/cameras.json, in its order (the order `view.load` gives the cameras)."""
    import json

    data = json.loads((run / "cameras.json").read_text())
    entries = data.get("cameras", []) if isinstance(data, dict) else data
    return [str(e.get("name", "")) for e in entries if isinstance(e, dict)]


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    from recon.io.images import resize_area

    return resize_area(np.clip(img, 0, 1).astype(np.float32), (w, h))


if __name__ == "__main__":
    main()
