"""The repair stage's library: pseudo cameras around and between the training cameras
(`cameras.py`), and the repairers that turn a pseudo view's render into a target with a per-pixel
confidence: reprojection of the training photos through the splat's depth
(`photo_reprojection.py`, no weights), SD 1.5 img2img / ControlNet-tile (`diffusion.py`) and
Difix3D+ (`difix.py`), both loaded from disk only. A library layer: it imports no stage and no
Trainer (recon/stages/repair.py drives the loop)."""
