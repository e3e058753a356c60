"""Pose estimation for unposed photos (used by recon.stages.poses).

- sfm: pycolmap incremental SfM tuned for 3–9 photos (the weights-free path)
- database: features and matches into a COLMAP database (SIFT or a learned matcher)
- learned: transformers keypoint matchers and point-map priors, loaded only from local weights
- metrics: pairwise relative-rotation and translation-direction errors against ground truth
"""
