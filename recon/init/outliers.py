"""Statistical outlier removal for point clouds (the rule open3d's `remove_statistical_outlier`
implements): a point whose mean distance to its k nearest neighbours is more than `std_ratio`
standard deviations above the cloud's average is dropped. Isolated points from wrong matches or
loose carving would otherwise seed floaters that few views cannot remove."""

from __future__ import annotations

import numpy as np


def statistical_outliers(points: np.ndarray, k: int = 16, std_ratio: float = 2.0,
                         backend: str = "auto") -> np.ndarray:
    """Keep-mask [P] bool for points [P,3]. backend: auto (open3d when installed, else scipy),
    open3d, scipy. Fewer than k+2 points are all kept (the statistics would be meaningless)."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < k + 2:
        return np.ones(n, dtype=bool)
    if backend in ("auto", "open3d"):
        try:
            # open3d is ~900 MB and needs libusb: optional, imported only here.
            import open3d as o3d
        except (ImportError, OSError):
            if backend == "open3d":
                raise
        else:
            pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
            _, kept = pcd.remove_statistical_outlier(nb_neighbors=k, std_ratio=std_ratio)
            keep = np.zeros(n, dtype=bool)
            keep[np.asarray(kept, dtype=np.int64)] = True
            return keep
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(points).query(points, k=k + 1)
    mean_d = dist[:, 1:].mean(axis=1)
    return mean_d <= mean_d.mean() + std_ratio * mean_d.std()
