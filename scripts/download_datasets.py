#!/usr/bin/env python3
"""Download the sparse-view benchmarks `recon eval` reads, into the layouts its protocols expect.

For users with internet access (the development machines have none; tests never run this).

    python scripts/download_datasets.py --list                 # what, where from, how big
    python scripts/download_datasets.py llff blender --root data/benchmarks
    python scripts/download_datasets.py dtu-masks dtu-calibration --root data/benchmarks/dtu
    python scripts/download_datasets.py spare --root data/benchmarks/spare --spare-files \\
        Track1_split_development.json dtu_calibration.zip dtu_development_3views.zip

Then, for example:
    recon eval --protocol llff --data data/benchmarks/nerf_llff_data --views 3 6 9
    recon eval --protocol dtu --data data/benchmarks/dtu --scenes standard --views 3 6 9
    recon eval --protocol blender --data data/benchmarks/nerf_synthetic --views 8
    recon eval --protocol spare --data data/benchmarks/spare --submission

Sources (each dataset's own terms apply; read them before use):
  dtu             DTU MVS "Rectified" images, 123 GB (roboimagedata.compute.dtu.dk, Aanæs et al. 2016):
                  too big to fetch blindly, the script prints the link. Unpack so that
                  ROOT/Rectified/scanN/rect_XXX_3_r5000.png exist.
  dtu-calibration DTU's SampleSet, whose "MVS Data/Calibration/cal18/pos_XXX.txt" are the projection
                  matrices RegNeRF reads; copied to ROOT/Calibration/cal18.
  dtu-masks       The object masks RegNeRF evaluates with (DVR/IDR masks plus RegNeRF's own), from
                  the RegNeRF README's Google Drive link; unpacked to ROOT/idrmasks/scanN/.
  llff            nerf_llff_data.zip from the NeRF authors' Google Drive (8 scenes, images_8 included).
  blender         nerf_synthetic.zip from the same folder (8 scenes, train/val/test splits).
  spare           AIM 2024 Sparse Neural Rendering Challenge files on Hugging Face
                  (aim2024-sparse-rendering/AIM2024-SparseNeuralRendering): split JSONs, calibration
                  and input-view zips; pick files with --spare-files (see --list).
Google Drive downloads need `pip install gdown`; without it the script prints the link to open.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

DTU_PAGE = "https://roboimagedata.compute.dtu.dk/?page_id=36"
DTU_RECTIFIED = "http://roboimagedata2.compute.dtu.dk/data/MVS/Rectified.zip"
DTU_SAMPLESET = "http://roboimagedata2.compute.dtu.dk/data/MVS/SampleSet.zip"
REGNERF_MASKS_GDRIVE = "1Yt5T3LJ9DZDiHbtd9PDFNHqJAd7wt-_E"  # RegNeRF README: "full mask data"
NERF_GDRIVE_FOLDER = "https://drive.google.com/drive/folders/128yBriW1IG_3NJ5Rp7APSTZsJqdJdfc1"
SPARE_HF = "https://huggingface.co/datasets/aim2024-sparse-rendering/AIM2024-SparseNeuralRendering/resolve/main"
SPARE_FILES = {
    "Track1_split_development.json": "3-view validation split", "Track1_split_test.json": "3-view test split",
    "Track2_split_development.json": "9-view validation split", "Track2_split_test.json": "9-view test split",
    "dtu_calibration.zip": "DTU projection matrices", "synth_calibration.zip": "SpaRe projection matrices",
    "dtu_development_3views.zip": "Track 1 validation inputs (DTU)", "dtu_test_3views.zip": "Track 1 test inputs (DTU)",
    "dtu_development_9views.zip": "Track 2 validation inputs (DTU)", "dtu_test_9views.zip": "Track 2 test inputs (DTU)",
    "synth_development_3views.zip": "Track 1 validation inputs (SpaRe)",
    "synth_test_3views.zip": "Track 1 test inputs (SpaRe)",
    "synth_development_9views.zip": "Track 2 validation inputs (SpaRe)",
    "synth_test_9views.zip": "Track 2 test inputs (SpaRe)",
    "dtu_training_p1.zip": "DTU training data, part 1", "dtu_training_p2.zip": "DTU training data, part 2",
    "synth_training_p1.zip": "SpaRe training data, part 1", "synth_training_p2.zip": "SpaRe training data, part 2",
}


def fetch(url: str, target: Path) -> Path:
    """Download `url` to `target` (skipped when it is already there)."""
    if target.is_file() and target.stat().st_size > 0:
        print(f"  have {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"  downloading {url}\n    → {target}")
    tmp = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f, length=1 << 20)
    tmp.replace(target)
    return target


def fetch_gdrive(file_id: str, target: Path) -> Path | None:
    """A Google Drive file through gdown (Drive's confirmation pages defeat plain HTTP)."""
    if target.is_file():
        return target
    if shutil.which("gdown") is None:
        print(f"  gdown is not installed: download https://drive.google.com/file/d/{file_id} to {target}")
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gdown", file_id, "-O", str(target)], check=True)
    return target


def unzip(archive: Path, into: Path) -> None:
    print(f"  unpacking {archive.name} → {into}")
    with zipfile.ZipFile(archive) as z:
        z.extractall(into)


def dtu_calibration(root: Path) -> None:
    archive = fetch(DTU_SAMPLESET, root / "downloads" / "SampleSet.zip")
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            if "/Calibration/cal18/pos_" in name and name.endswith(".txt"):
                out = root / "Calibration" / "cal18" / Path(name).name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(z.read(name))
    print(f"  wrote {root / 'Calibration' / 'cal18'}")


def dtu_masks(root: Path) -> None:
    archive = fetch_gdrive(REGNERF_MASKS_GDRIVE, root / "downloads" / "regnerf_masks.zip")
    if archive is not None:
        unzip(archive, root / "downloads" / "masks")
        found = next((root / "downloads" / "masks").rglob("idrmasks"), None)
        if found is not None and not (root / "idrmasks").exists():
            shutil.move(str(found), root / "idrmasks")
        print(f"  masks in {root / 'idrmasks'}")


def nerf_folder(name: str, root: Path) -> None:
    print(f"  {name}.zip is in the NeRF authors' Google Drive folder {NERF_GDRIVE_FOLDER}")
    if shutil.which("gdown") is None:
        print(f"  gdown is not installed: download {name}.zip from that folder and unzip it in {root}")
        return
    folder = root / "downloads" / "nerf_gdrive"
    subprocess.run(["gdown", "--folder", NERF_GDRIVE_FOLDER, "-O", str(folder)], check=True)
    archive = next(folder.rglob(f"{name}.zip"), None)
    if archive is None:
        sys.exit(f"{name}.zip was not in the downloaded folder {folder}")
    unzip(archive, root)


def spare(root: Path, files: list[str]) -> None:
    for name in files:
        if name not in SPARE_FILES:
            sys.exit(f"unknown SpaRe file {name}; see --list")
        path = fetch(f"{SPARE_HF}/{name}", root / name if name.endswith(".json") else root / "downloads" / name)
        if path.suffix == ".zip":
            unzip(path, root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="*", help="dtu, dtu-calibration, dtu-masks, llff, blender, spare")
    ap.add_argument("--root", type=Path, default=Path("data/benchmarks"), help="where to put them")
    ap.add_argument("--spare-files", nargs="*", default=["Track1_split_development.json", "dtu_calibration.zip",
                                                         "dtu_development_3views.zip"])
    ap.add_argument("--list", action="store_true", help="describe the sources and exit")
    args = ap.parse_args()
    if args.list or not args.datasets:
        print(__doc__)
        print("SpaRe files:\n" + "\n".join(f"  {k:32s} {v}" for k, v in SPARE_FILES.items()))
        return
    known = ("dtu", "dtu-calibration", "dtu-masks", "llff", "blender", "spare")
    if unknown := [d for d in args.datasets if d not in known]:
        sys.exit(f"unknown dataset(s) {unknown}; choose from {', '.join(known)}")
    for name in args.datasets:
        print(f"[{name}]")
        if name == "dtu":
            print(f"  123 GB: download {DTU_RECTIFIED} (see {DTU_PAGE}) and unzip into {args.root}")
        elif name == "dtu-calibration":
            dtu_calibration(args.root)
        elif name == "dtu-masks":
            dtu_masks(args.root)
        elif name == "llff":
            nerf_folder("nerf_llff_data", args.root)
        elif name == "blender":
            nerf_folder("nerf_synthetic", args.root)
        else:
            spare(args.root, args.spare_files)


if __name__ == "__main__":
    main()
