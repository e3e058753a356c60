"""Few-view init parts that use the known poses: plane-sweep stereo (plane_sweep), epipolar SIFT
triangulation (triangulate), the visual hull of the masks (visual_hull), statistical outlier
removal (outliers). recon/stages/init.py combines them."""
