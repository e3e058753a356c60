"""Evaluation on the sparse-view benchmarks (`recon eval`).

  protocols.py   DTU, LLFF, NeRF-synthetic splits and metrics; scene discovery under a data root
  spare.py       SpaRe / AIM 2024 challenge: split files, mask/box metrics, submission names
  holdout.py     a COLMAP dataset's photos, some trained as plain photos (cameras estimated or given), the
                 rest scored (on the object with masks/); pose errors of the training views
  metrics.py     PSNR, SSIM, LPIPS (only with local weights), masked and box-cropped variants
  evaluate.py    one job: train a (scene, view count), render and score its test views
  batch.py       many jobs: planning, resume, failure/timeout isolation, results.json per view count
  ray_runner.py  the same jobs as Ray tasks
  report.py      results.csv, report.md, plots, contact sheets
  command.py     the `recon eval` options
"""
